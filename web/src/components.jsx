// Pieces shared by the views.
import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import { percent } from "./format.js";

/** Load something; returns [data, error, reload, setData]. */
export function useLoad(load, deps) {
  const [data, setData] = useState(null);
  const [error, setError] = useState(null);
  const seq = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++seq.current;
    try {
      const value = await load();
      if (mine === seq.current) {
        setData(value);
        setError(null);
      }
    } catch (err) {
      if (mine === seq.current) setError(err);
    }
  }, deps);
  useEffect(() => {
    reload();
  }, [reload]);
  return [data, error, reload, setData];
}

export function Notice({ error, children, kind = "error" }) {
  if (!error && !children) return null;
  return (
    <p class={`notice ${kind}`} role={kind === "error" ? "alert" : "status"}>
      {error ? error.message || String(error) : children}
    </p>
  );
}

export function PageHeader({ title, children }) {
  return (
    <header class="page-header">
      <h1 tabIndex={-1} id="page-title">{title}</h1>
      <div class="page-actions">{children}</div>
    </header>
  );
}

const STATUS_TEXT = { queued: "Queued", running: "Running", completed: "Completed", failed: "Failed", cancelled: "Cancelled" };

export function StatusBadge({ status }) {
  return <span class={`badge status-${status}`}>{STATUS_TEXT[status] || status}</span>;
}

export const STAGES = ["ingest", "vad", "asr", "diarization", "post"];
const STAGE_NAMES = { ingest: "Decode", vad: "Speech", asr: "Recognise", diarization: "Speakers", post: "Finish" };

/** One progress bar per pipeline stage, with its state and message. */
export function StageProgress({ job }) {
  const stages = job.stages || {};
  const shown = STAGES.filter((s) => s !== "diarization" || stages.diarization || job.options?.diarize !== "off");
  return (
    <ol class="stages" aria-label="Progress by stage">
      {shown.map((name) => {
        const st = stages[name] || {};
        const value = st.state === "completed" ? 1 : st.progress || 0;
        const state = st.state || (job.status === "completed" ? "completed" : "waiting");
        return (
          <li key={name} class={`stage stage-${state}`} data-stage={name} data-state={state}>
            <span class="stage-name">{STAGE_NAMES[name]}</span>
            <progress max="1" value={value} aria-label={`${STAGE_NAMES[name]}: ${state} ${percent(value)}`} />
            <span class="stage-state" title={st.error || st.message || ""}>{state === "waiting" ? "" : percent(value)}</span>
          </li>
        );
      })}
    </ol>
  );
}

/** A modal confirmation on the native <dialog> (focus is trapped and restored by the browser). */
export function useConfirm() {
  const [ask, setAsk] = useState(null);
  const confirm = (message, action = "Confirm") =>
    new Promise((resolve) => setAsk({ message, action, resolve }));
  const ref = useRef(null);
  useEffect(() => {
    if (ask && ref.current && !ref.current.open) ref.current.showModal();
  }, [ask]);
  const done = (ok) => {
    ask?.resolve(ok);
    ref.current?.close();
    setAsk(null);
  };
  const dialog = ask && (
    <dialog ref={ref} class="confirm" onCancel={() => done(false)} aria-labelledby="confirm-text">
      <p id="confirm-text">{ask.message}</p>
      <div class="row end">
        <button type="button" onClick={() => done(false)}>Cancel</button>
        <button type="button" class="danger" onClick={() => done(true)}>{ask.action}</button>
      </div>
    </dialog>
  );
  return [confirm, dialog];
}

export function Field({ label, hint, children, id }) {
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {children}
      {hint && <small class="hint" id={`${id}-hint`}>{hint}</small>}
    </div>
  );
}

export function Empty({ children }) {
  return <p class="empty">{children}</p>;
}
