"""The Kafka layer: clients, contracts on the wire and the topic catalogue (``kafka``), the stage runtime
(``runtime``), the pipeline stages (``stages``) and operator tools (``tools``). No ML code here."""
