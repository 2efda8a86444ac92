// Jobs: upload (several files by drag and drop, with the job options), the list with filters, per-stage
// progress pushed live by the gateway, and cancel / retry / delete.
import { useEffect, useRef, useState } from "preact/hooks";
import { api, can, qs } from "../api.js";
import { Empty, Notice, PageHeader, StageProgress, StatusBadge, useConfirm } from "../components.jsx";
import { mergeStage, subscribeJobs } from "../feed.js";
import { bytes, clock, when } from "../format.js";
import { go, href } from "../router.js";
import { Upload } from "./Upload.jsx";

const STATUSES = ["queued", "running", "completed", "failed", "cancelled"];
const SOURCES = ["upload", "live", "producer"];

function dayStart(date) {
  return date ? new Date(`${date}T00:00:00`).toISOString() : "";
}

function dayEnd(date) {
  if (!date) return "";
  const d = new Date(`${date}T00:00:00`);
  d.setDate(d.getDate() + 1);
  return d.toISOString();
}

function Filters({ filters, onChange }) {
  const set = (name) => (e) => onChange({ ...filters, [name]: e.currentTarget.value });
  return (
    <form class="filters" aria-label="Filter jobs" onSubmit={(e) => e.preventDefault()}>
      <div class="field">
        <label for="f-status">Status</label>
        <select id="f-status" value={filters.status || ""} onChange={set("status")}>
          <option value="">Any</option>
          {STATUSES.map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
      </div>
      <div class="field">
        <label for="f-source">Source</label>
        <select id="f-source" value={filters.source || ""} onChange={set("source")}>
          <option value="">Any</option>
          {SOURCES.map((s) => <option key={s} value={s}>{s}</option>)}
        </select>
      </div>
      <div class="field">
        <label for="f-tag">Tag</label>
        <input id="f-tag" value={filters.tag || ""} onChange={set("tag")} placeholder="e.g. sales" />
      </div>
      <div class="field">
        <label for="f-from">From</label>
        <input id="f-from" type="date" value={filters.from || ""} onChange={set("from")} />
      </div>
      <div class="field">
        <label for="f-to">To</label>
        <input id="f-to" type="date" value={filters.to || ""} onChange={set("to")} />
      </div>
      <button type="button" onClick={() => onChange({})}>Clear</button>
    </form>
  );
}

function JobRow({ job, onAction }) {
  const done = job.status === "completed";
  const title = job.filename || (job.source === "live" ? "Live session" : job.job_id);
  return (
    <li class={`job job-${job.status}`} data-job-id={job.job_id}>
      <div class="job-main">
        <h2 class="job-title">
          {done ? <a href={href(`/jobs/${job.job_id}`)}>{title}</a> : <span>{title}</span>}
        </h2>
        <div class="job-meta">
          <StatusBadge status={job.status} />
          <span>{when(job.created_at)}</span>
          <span>{job.source}</span>
          {job.duration != null && <span>{clock(job.duration)}</span>}
          {job.size_bytes ? <span>{bytes(job.size_bytes)}</span> : null}
          <span>{job.model}</span>
          {job.priority !== "normal" && <span>priority {job.priority}</span>}
          {(job.tags || []).map((t) => <span key={t} class="tag">{t}</span>)}
        </div>
        {job.error && <p class="job-error">{job.error}</p>}
      </div>
      {job.status !== "cancelled" && <StageProgress job={job} />}
      <div class="job-actions">
        {done && <a class="button" href={href(`/jobs/${job.job_id}`)}>Open</a>}
        {(job.status === "queued" || job.status === "running") && can("jobs:write") && (
          <button type="button" onClick={() => onAction("cancel", job)}>Cancel</button>
        )}
        {(job.status === "failed" || job.status === "cancelled") && job.audio_stored && can("jobs:write") && (
          <button type="button" onClick={() => onAction("retry", job)}>Retry</button>
        )}
        {(can("jobs:delete") || can("jobs:write")) && (
          <button type="button" class="danger" onClick={() => onAction("delete", job)} aria-label={`Delete ${title}`}>
            Delete
          </button>
        )}
      </div>
    </li>
  );
}

export function Jobs({ query }) {
  const filters = { status: query.status, source: query.source, tag: query.tag, from: query.from, to: query.to };
  const [jobs, setJobs] = useState(null);
  const [cursor, setCursor] = useState(null);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(false);
  const [confirm, dialog] = useConfirm();
  const jobsRef = useRef([]);
  jobsRef.current = jobs || [];
  const key = JSON.stringify(filters);

  const params = (extra) => qs({
    status: filters.status, source: filters.source, tag: filters.tag,
    from: dayStart(filters.from), to: dayEnd(filters.to), limit: 25, ...extra,
  });

  useEffect(() => {
    let gone = false;
    setJobs(null);
    api(`/v1/jobs${params({})}`).then(
      (r) => { if (!gone) { setJobs(r.jobs); setCursor(r.next_cursor); setError(null); } },
      (e) => { if (!gone) setError(e); },
    );
    return () => { gone = true; };
  }, [key]);

  useEffect(() => subscribeJobs({
    onState: setLive,
    onEvent: (kind, data) => {
      if (kind === "overflow") return;
      setJobs((list) => {
        if (!list) return list;
        const i = list.findIndex((j) => j.job_id === data.job_id);
        if (kind === "stage") {
          if (i < 0) return list;
          const next = list.slice();
          next[i] = mergeStage(list[i], data);
          return next;
        }
        if (i < 0) {
          const unfiltered = !Object.values(filters).some(Boolean);
          return unfiltered ? [data, ...list] : list;
        }
        const next = list.slice();
        // a snapshot read from the database may lag the newest report: merge, never go back
        let merged = { ...list[i], ...data, stages: { ...(data.stages || {}) } };
        const sameRun = list[i].revision === data.revision;
        for (const [stage, st] of sameRun ? Object.entries(list[i].stages || {}) : []) {
          merged = mergeStage(merged, { ...st, stage, revision: merged.revision, at: st.updated_at });
        }
        merged.status = data.status;
        next[i] = merged;
        return next;
      });
    },
  }), [key]);

  const more = async () => {
    try {
      const r = await api(`/v1/jobs${params({ cursor })}`);
      setJobs([...(jobs || []), ...r.jobs]);
      setCursor(r.next_cursor);
    } catch (e) {
      setError(e);
    }
  };

  const onAction = async (what, job) => {
    setError(null);
    try {
      if (what === "cancel") {
        const updated = await api(`/v1/jobs/${job.job_id}/cancel`, { method: "POST" });
        setJobs(jobsRef.current.map((j) => (j.job_id === job.job_id ? updated : j)));
      } else if (what === "retry") {
        await api(`/v1/jobs/${job.job_id}/retry`, { method: "POST" });
        const updated = await api(`/v1/jobs/${job.job_id}`);
        setJobs(jobsRef.current.map((j) => (j.job_id === job.job_id ? updated : j)));
      } else if (what === "delete") {
        const name = job.filename || job.job_id;
        if (!(await confirm(`Delete “${name}” with its audio and transcripts? This cannot be undone.`, "Delete"))) return;
        await api(`/v1/jobs/${job.job_id}`, { method: "DELETE" });
        setJobs(jobsRef.current.filter((j) => j.job_id !== job.job_id));
      }
    } catch (e) {
      setError(e);
    }
  };

  const onQueued = (job) => setJobs((list) => [job, ...(list || []).filter((j) => j.job_id !== job.job_id)]);
  const setFilters = (f) => go(href("/jobs", f).slice(1));

  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Jobs">
        <span class={`live-dot ${live ? "on" : ""}`} role="status" aria-live="polite">
          {live ? "Live updates on" : "Connecting to live updates…"}
        </span>
      </PageHeader>
      {can("jobs:write") && <Upload onQueued={onQueued} />}
      <Filters filters={filters} onChange={setFilters} />
      <Notice error={error} />
      {jobs === null && !error && <p class="muted">Loading jobs…</p>}
      {jobs && jobs.length === 0 && <Empty>No jobs yet. Drop recordings above to transcribe them.</Empty>}
      {jobs && jobs.length > 0 && (
        <ul class="jobs" aria-label="Jobs">
          {jobs.map((job) => <JobRow key={job.job_id} job={job} onAction={onAction} />)}
        </ul>
      )}
      {cursor && <button type="button" onClick={more}>Load more</button>}
      {dialog}
    </section>
  );
}
