// Job progress pushed by the gateway (GET /v1/events, server-sent events fed by the jobs.events topic).
// EventSource cannot send an Authorization header, so the stream is read with fetch and parsed with
// eventsource-parser; it reconnects after a drop (and when the server ends it at the token's lifetime).
import { EventSourceParserStream } from "eventsource-parser/stream";
import { accessToken, renew } from "./api.js";

/**
 * Subscribe to job events: onEvent(kind, data) with kind "stage" or "job"; onState(connected) reports the
 * connection. Returns a function that stops the feed.
 */
export function subscribeJobs({ jobId, onEvent, onState = () => {} }) {
  let stopped = false;
  let controller = null;
  let delay = 1000;

  async function connect() {
    while (!stopped) {
      controller = new AbortController();
      try {
        if (!accessToken()) await renew();
        const url = jobId ? `/v1/events?job_id=${encodeURIComponent(jobId)}` : "/v1/events";
        const response = await fetch(url, {
          headers: { Authorization: `Bearer ${accessToken()}`, Accept: "text/event-stream" },
          signal: controller.signal,
          credentials: "omit",
          cache: "no-store",
        });
        if (response.status === 401) {
          await renew();
          continue;
        }
        if (!response.ok || !response.body) throw new Error(`feed answered ${response.status}`);
        const events = response.body
          .pipeThrough(new TextDecoderStream())
          .pipeThrough(new EventSourceParserStream());
        const reader = events.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          if (value.event === "ready") {
            delay = 1000;
            onState(true);
          } else if (value.event === "stage" || value.event === "job") {
            onEvent(value.event, JSON.parse(value.data));
          } else if (value.event === "overflow") {
            onEvent("overflow", {});
          }
        }
      } catch (error) {
        if (stopped || error?.name === "AbortError") return;
      }
      onState(false);
      if (stopped) return;
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(15000, delay * 2);
    }
  }

  connect();
  return () => {
    stopped = true;
    controller?.abort();
  };
}

const ORDER = { queued: 0, running: 1, completed: 2, failed: 2 };

/** Merge a stage report into a job as the projection does: states never go back, progress only grows. */
export function mergeStage(job, ev) {
  if (!job || ev.revision !== job.revision) return job;
  const stages = { ...(job.stages || {}) };
  const old = stages[ev.stage] || {};
  const state = (ORDER[old.state] ?? -1) >= (ORDER[ev.state] ?? 0) ? old.state : ev.state;
  stages[ev.stage] = {
    ...old,
    state,
    progress: Math.max(old.progress ?? 0, ev.progress ?? 0),
    message: ev.message ?? old.message,
    error: old.error ?? ev.error,
    updated_at: ev.at,
  };
  const status = job.status === "queued" && ev.state !== "failed" ? "running" : job.status;
  return { ...job, stages, status };
}
