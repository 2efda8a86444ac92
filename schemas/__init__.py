"""The Avro contracts (``schemas/avro/*.avsc``): the single source of truth for what flows on a topic.

A package only so that the contracts ship inside the installed distribution as package data
(``foundation.contracts`` reads them from wherever it is installed, a wheel in an image included).
"""
