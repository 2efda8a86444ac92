// A transcript synced to its recording: the word being spoken is highlighted, a click on a word seeks there;
// speakers in colours with a who-spoke-when timeline; rename a speaker; playback speed; keyboard shortcuts;
// low-confidence words marked; words corrected inline and saved as a new revision; revisions, compare and
// downloads; the call's analytics beside it (views/CallAnalytics.jsx).
import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import WaveSurfer from "wavesurfer.js";
import { api, can, saveBlob } from "../api.js";
import { Notice, PageHeader, StageProgress, StatusBadge } from "../components.jsx";
import { subscribeJobs, mergeStage } from "../feed.js";
import { clock, percent, speakerColor, when } from "../format.js";
import { go, href } from "../router.js";
import { CallAnalytics } from "./CallAnalytics.jsx";

const LOW_CONFIDENCE = 0.6;
const SPEEDS = [0.5, 0.75, 1, 1.25, 1.5, 2];
const FORMATS = [["txt", "TXT"], ["srt", "SRT"], ["vtt", "VTT"], ["json", "JSON"], ["rttm", "RTTM"]];

/** Every word of the transcript in time order, with where it lives (segment, index). */
function flatten(transcript) {
  const words = [];
  transcript.segments.forEach((seg, s) => {
    seg.words.forEach((w, i) => words.push({ ...w, seg: s, segId: seg.id, i, key: words.length }));
  });
  return words;
}

/** The word being spoken at time t: the last one started, while it lasts (or until the next starts). */
export function wordAt(words, t) {
  let lo = 0;
  let hi = words.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    if (words[mid].start <= t + 1e-3) {
      found = mid;
      lo = mid + 1;
    } else {
      hi = mid - 1;
    }
  }
  if (found < 0) return -1;
  const next = words[found + 1];
  const until = Math.max(words[found].end, next ? Math.min(next.start, words[found].end + 0.5) : words[found].end);
  return t <= until ? found : -1;
}

function nonce() {
  return document.querySelector('meta[name="csp-nonce"]')?.content || "";
}

function usePlayer(jobId, audioRef, waveRef, onTime) {
  const [ws, setWs] = useState(null);
  const [state, setState] = useState({ ready: false, playing: false, error: null, rate: 1 });
  useEffect(() => {
    if (!audioRef.current || !waveRef.current) return undefined;
    const player = WaveSurfer.create({
      container: waveRef.current, media: audioRef.current, height: 72, waveColor: "#9db3cc",
      progressColor: "#1f4e8c", cursorColor: "#b3451b", cursorWidth: 2, barWidth: 2, barGap: 1, barRadius: 1,
      normalize: true, dragToSeek: true, cspNonce: nonce(),
    });
    let gone = false;
    player.on("ready", () => setState((s) => ({ ...s, ready: true })));
    player.on("play", () => setState((s) => ({ ...s, playing: true })));
    player.on("pause", () => setState((s) => ({ ...s, playing: false })));
    player.on("timeupdate", (t) => onTime.current(t));
    player.on("error", (e) => setState((s) => ({ ...s, error: e })));
    api(`/v1/jobs/${jobId}/audio`, { as: "blob" }).then(
      (blob) => { if (!gone) player.loadBlob(blob).catch(() => {}); },
      (err) => { if (!gone) setState((s) => ({ ...s, error: err })); },
    );
    setWs(player);
    return () => {
      gone = true;
      player.destroy();
    };
  }, [jobId]);
  return [ws, state, setState];
}

function Speakers({ transcript, colors, jobId, revision, onChanged }) {
  const [editing, setEditing] = useState(null);
  const [message, setMessage] = useState(null);
  const [error, setError] = useState(null);
  const rename = async (e, speaker) => {
    e.preventDefault();
    const name = String(new FormData(e.currentTarget).get("name") || "").trim();
    try {
      await api(`/v1/jobs/${jobId}/speakers/${encodeURIComponent(speaker.id)}?revision=${revision}`, {
        method: "PATCH", json: { name: name || null },
      });
      setEditing(null);
      setMessage(`Renamed to ${name || speaker.label}.`);
      onChanged();
    } catch (err) {
      setError(err);
    }
  };
  const enroll = async (speaker) => {
    setError(null);
    try {
      const profile = await api(`/v1/jobs/${jobId}/speakers/${encodeURIComponent(speaker.id)}/enroll`, {
        method: "POST", json: { name: speaker.name || speaker.label, revision },
      });
      setMessage(`Voice profile “${profile.name}” is being computed (${profile.from.seconds.toFixed(0)} s of speech); see Speakers.`);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <section class="card speakers" aria-labelledby="speakers-title">
      <h2 id="speakers-title">Speakers</h2>
      <ul>
        {transcript.speakers.map((sp) => (
          <li key={sp.id} data-speaker-id={sp.id}>
            <span class="swatch" style={{ background: colors[sp.id] }} aria-hidden="true" />
            {editing === sp.id ? (
              <form class="inline" onSubmit={(e) => rename(e, sp)}>
                <label class="visually-hidden" for={`rename-${sp.id}`}>New name for {sp.name || sp.label}</label>
                <input id={`rename-${sp.id}`} name="name" defaultValue={sp.name || ""} placeholder={sp.label} autofocus />
                <button type="submit" class="primary">Save</button>
                <button type="button" onClick={() => setEditing(null)}>Cancel</button>
              </form>
            ) : (
              <>
                <strong class="speaker-name">{sp.name || sp.label}</strong>
                <span class="muted">{clock(sp.talk_time)}</span>
                {sp.identified_as ? (
                  <span class="ident">identified · similarity {percent(sp.similarity)}</span>
                ) : sp.similarity != null ? (
                  <span class="muted small">closest voice {percent(sp.similarity)}</span>
                ) : null}
                {can("jobs:write") && (
                  <button type="button" class="link" onClick={() => setEditing(sp.id)}
                    aria-label={`Rename ${sp.name || sp.label}`}>Rename</button>
                )}
                {can("speakers:write") && (
                  <button type="button" class="link" onClick={() => enroll(sp)}
                    aria-label={`Save the voice of ${sp.name || sp.label} as a profile`}>Save voice</button>
                )}
              </>
            )}
          </li>
        ))}
      </ul>
      {transcript.speakers.length === 0 && <p class="muted">No speakers (diarization was off).</p>}
      <Notice error={error} />
      {message && <p class="notice info" role="status">{message}</p>}
    </section>
  );
}

function Timeline({ transcript, colors, duration, onSeek, playhead }) {
  const speakers = transcript.speakers.length ? transcript.speakers : [{ id: null, label: "Speech" }];
  const total = duration || transcript.duration || 1;
  return (
    <div class="timeline" aria-label="Who spoke when">
      <div class="playhead" ref={playhead} aria-hidden="true" />
      {speakers.map((sp) => (
        <div class="lane" key={sp.id ?? "all"}>
          <span class="lane-label">{sp.name || sp.label}</span>
          <div class="lane-track">
            {transcript.segments.filter((s) => sp.id === null || s.speaker_id === sp.id).map((s) => (
              <button type="button" key={s.id} class="turn" tabIndex={-1}
                style={{ left: `${(s.start / total) * 100}%`, width: `${Math.max(0.4, ((s.end - s.start) / total) * 100)}%`,
                  background: colors[sp.id] || "#1f6fb2" }}
                title={`${sp.name || sp.label} ${clock(s.start)}–${clock(s.end)}`}
                aria-label={`${sp.name || sp.label} at ${clock(s.start)}`}
                onClick={() => onSeek(s.start)} />
            ))}
          </div>
        </div>
      ))}
    </div>
  );
}

function Word({ w, editing, edited, editMode, onEdit, onCommit, onCancel }) {
  const low = w.probability < LOW_CONFIDENCE;
  const cls = `w${low ? " low" : ""}${edited !== undefined ? " edited" : ""}`;
  if (editing) {
    return (
      <input class="word-input" aria-label={`Correct “${w.word.trim()}”`} defaultValue={edited ?? w.word.trim()} autofocus
        size={Math.max(3, (edited ?? w.word).length)}
        onKeyDown={(e) => {
          if (e.key === "Enter") { e.preventDefault(); onCommit(e.currentTarget.value); }
          if (e.key === "Escape") { e.preventDefault(); onCancel(); }
        }}
        onBlur={(e) => onCommit(e.currentTarget.value)} />
    );
  }
  const text = edited !== undefined ? edited : w.word.trimStart();
  const lead = w.word.startsWith(" ") ? " " : "";
  return (
    <>{lead}<span id={`w-${w.key}`} class={cls} data-start={w.start} data-end={w.end} data-key={w.key}
      title={low ? `Low confidence (${percent(w.probability)})` : undefined}
      tabIndex={editMode ? 0 : undefined} role={editMode ? "button" : undefined}
      onKeyDown={editMode ? (e) => { if (e.key === "Enter") { e.preventDefault(); onEdit(); } } : undefined}>
      {text}
    </span></>
  );
}

function Downloads({ jobId, revision, name }) {
  const [error, setError] = useState(null);
  const download = async (fmt) => {
    try {
      const blob = await api(`/v1/jobs/${jobId}/transcript?format=${fmt}&revision=${revision}`, { as: "blob" });
      saveBlob(blob, `${name}.r${revision}.${fmt}`);
    } catch (err) {
      setError(err);
    }
  };
  return (
    <div class="downloads" role="group" aria-label="Download the transcript">
      <span class="muted">Download</span>
      {FORMATS.map(([fmt, label]) => (
        <button type="button" key={fmt} onClick={() => download(fmt)} data-format={fmt}>{label}</button>
      ))}
      <Notice error={error} />
    </div>
  );
}

function Revisions({ jobId, revision, revisions }) {
  const done = revisions.filter((r) => r.status === "completed");
  const [a, setA] = useState(done.length > 1 ? done[done.length - 2].revision : 1);
  const [b, setB] = useState(revision);
  return (
    <section class="card revisions" aria-labelledby="revisions-title">
      <h2 id="revisions-title">Revisions</h2>
      <ol>
        {revisions.map((r) => (
          <li key={r.revision} data-revision={r.revision} aria-current={r.revision === revision ? "true" : undefined}>
            <a href={href(`/jobs/${jobId}`, { rev: r.revision })}>Revision {r.revision}</a>{" "}
            <span class="muted small">
              {r.options?.edited_from ? `edited from ${r.options.edited_from}` : r.model} · {r.status} · {when(r.created_at)}
            </span>
          </li>
        ))}
      </ol>
      {done.length > 1 && (
        <form class="inline" onSubmit={(e) => { e.preventDefault(); go(href(`/jobs/${jobId}/compare`, { a, b }).slice(1)); }}>
          <label for="cmp-a">Compare</label>
          <select id="cmp-a" value={a} onChange={(e) => setA(Number(e.currentTarget.value))}>
            {done.map((r) => <option key={r.revision} value={r.revision}>{r.revision}</option>)}
          </select>
          <label for="cmp-b">with</label>
          <select id="cmp-b" value={b} onChange={(e) => setB(Number(e.currentTarget.value))}>
            {done.map((r) => <option key={r.revision} value={r.revision}>{r.revision}</option>)}
          </select>
          <button type="submit">Compare</button>
        </form>
      )}
    </section>
  );
}

function Waiting({ jobId, job, setJob }) {
  useEffect(() => subscribeJobs({
    jobId,
    onEvent: (kind, data) => setJob((j) => (kind === "stage" ? mergeStage(j, data) : data)),
  }), [jobId]);
  return (
    <section class="card">
      <p><StatusBadge status={job.status} /> {job.error || "The transcript appears here when the job completes."}</p>
      <StageProgress job={job} />
    </section>
  );
}

export function Transcript({ jobId, query }) {
  const [job, setJob] = useState(null);
  const [transcript, setTranscript] = useState(null);
  const [revisions, setRevisions] = useState([]);
  const [error, setError] = useState(null);
  const wanted = query.rev ? Number(query.rev) : undefined;

  const load = async () => {
    try {
      const j = await api(`/v1/jobs/${jobId}`);
      setJob(j);
      if (j.status !== "completed") return;
      const t = await api(`/v1/jobs/${jobId}/transcript${wanted ? `?revision=${wanted}` : ""}`);
      setTranscript(t);
      setRevisions((await api(`/v1/jobs/${jobId}/revisions`)).revisions);
    } catch (err) {
      setError(err);
    }
  };
  useEffect(() => { setTranscript(null); load(); }, [jobId, wanted]);
  useEffect(() => { if (job?.status === "completed" && !transcript) load(); }, [job?.status]);

  const title = job?.filename || (job?.source === "live" ? "Live session" : jobId);
  return (
    <section aria-labelledby="page-title" class="transcript-view">
      <PageHeader title={title}>
        <a href="#/jobs" class="button">All jobs</a>
      </PageHeader>
      <Notice error={error} />
      {job && job.status !== "completed" && <Waiting jobId={jobId} job={job} setJob={setJob} />}
      {job && transcript && (
        <Editor job={job} transcript={transcript} revisions={revisions} query={query} reload={load} />
      )}
    </section>
  );
}

function Editor({ job, transcript, revisions, query, reload }) {
  const jobId = job.job_id;
  const revision = transcript.revision;
  const words = useMemo(() => flatten(transcript), [transcript]);
  // in time order for the search (segments of different channels overlap in time)
  const byTime = useMemo(() => [...words].sort((x, y) => x.start - y.start || x.key - y.key), [words]);
  const keyAt = (t) => {
    const k = wordAt(byTime, t);
    return k < 0 ? -1 : byTime[k].key;
  };
  const colors = useMemo(() => Object.fromEntries(transcript.speakers.map((s, i) => [s.id, speakerColor(i)])), [transcript]);
  const audioRef = useRef(null);
  const waveRef = useRef(null);
  const playhead = useRef(null);
  const active = useRef(-1);
  const [follow, setFollow] = useState(true);
  const followRef = useRef(true);
  followRef.current = follow;
  const [editMode, setEditMode] = useState(false);
  const [editing, setEditing] = useState(null);
  const [edits, setEdits] = useState({});
  const [saveError, setSaveError] = useState(null);
  const [saving, setSaving] = useState(false);
  const [now, setNow] = useState(0);
  const duration = transcript.duration || job.duration || 0;

  const onTime = useRef(() => {});
  onTime.current = (t) => {
    const k = keyAt(t);
    if (k !== active.current) {
      document.getElementById(`w-${active.current}`)?.classList.remove("active");
      active.current = k;
      const el = document.getElementById(`w-${k}`);
      if (el) {
        el.classList.add("active");
        if (followRef.current && audioRef.current && !audioRef.current.paused) el.scrollIntoView({ block: "nearest" });
      }
    }
    if (playhead.current && duration) playhead.current.style.left = `calc(var(--label) + (100% - var(--label)) * ${Math.min(1, t / duration)})`;
    setNow(t);
  };
  const [ws, player, setPlayer] = usePlayer(jobId, audioRef, waveRef, onTime);

  const seek = (t) => {
    if (!ws) return;
    ws.setTime(t);
    if (audioRef.current && audioRef.current.readyState >= 1) audioRef.current.currentTime = t;
    onTime.current(t);
  };

  // a link with ?t= (from search) starts there, playing with &play=1
  useEffect(() => {
    if (!player.ready || query.t === undefined) return;
    const t = Number(query.t);
    seek(t);
    const k = keyAt(t + 0.01);
    document.getElementById(`w-${k}`)?.scrollIntoView({ block: "center" });
    if (query.play === "1") ws.play().catch(() => {});
  }, [player.ready, query.t]);

  // keyboard shortcuts
  useEffect(() => {
    const onKey = (e) => {
      if (!ws || e.ctrlKey || e.metaKey || e.altKey) return;
      const tag = e.target?.tagName;
      if (["INPUT", "TEXTAREA", "SELECT"].includes(tag) || e.target?.isContentEditable) return;
      const pressable = tag === "BUTTON" || tag === "A" || e.target?.getAttribute?.("role") === "button";
      if (pressable && (e.key === " " || e.key === "Enter")) return; // the focused control's own action
      const actions = {
        " ": () => ws.playPause(), k: () => ws.playPause(),
        j: () => seek(Math.max(0, ws.getCurrentTime() - 5)), ArrowLeft: () => seek(Math.max(0, ws.getCurrentTime() - 5)),
        l: () => seek(ws.getCurrentTime() + 5), ArrowRight: () => seek(ws.getCurrentTime() + 5),
        "[": () => setRate(SPEEDS[Math.max(0, SPEEDS.indexOf(player.rate) - 1)]),
        "]": () => setRate(SPEEDS[Math.min(SPEEDS.length - 1, SPEEDS.indexOf(player.rate) + 1)]),
      };
      const act = actions[e.key];
      if (act) {
        e.preventDefault();
        act();
      }
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  });

  const setRate = (rate) => {
    ws?.setPlaybackRate(rate, true);
    setPlayer((s) => ({ ...s, rate }));
  };

  const onWordsClick = (e) => {
    const el = e.target.closest?.(".w");
    if (!el) return;
    const w = words[Number(el.dataset.key)];
    if (editMode) setEditing(w.key);
    else seek(w.start);
  };

  const commit = (w, value) => {
    const text = value.trim();
    setEditing(null);
    setEdits((old) => {
      const next = { ...old };
      if (text === w.word.trim()) delete next[w.key];
      else next[w.key] = text;
      return next;
    });
  };

  const save = async () => {
    setSaving(true);
    setSaveError(null);
    try {
      const list = Object.entries(edits).map(([key, word]) => {
        const w = words[Number(key)];
        return { segment_id: w.segId, index: w.i, word };
      });
      const saved = await api(`/v1/jobs/${jobId}/edits`, { method: "POST", json: { revision, words: list } });
      setEdits({});
      setEditMode(false);
      go(href(`/jobs/${jobId}`, { rev: saved.revision }).slice(1));
    } catch (err) {
      setSaveError(err);
    } finally {
      setSaving(false);
    }
  };

  const pending = Object.keys(edits).length;
  const name = (job.filename || jobId).replace(/\.[^.]+$/, "");
  return (
    <div class="editor">
      <section class="card player" aria-label="Player">
        <div ref={waveRef} class="wave" />
        <audio ref={audioRef} preload="auto" class="visually-hidden" aria-hidden="true" />
        <Timeline transcript={transcript} colors={colors} duration={duration} onSeek={seek} playhead={playhead} />
        <div class="controls">
          <button type="button" class="primary" onClick={() => ws?.playPause()} disabled={!player.ready}
            aria-keyshortcuts="k Space" data-testid="play">{player.playing ? "Pause" : "Play"}</button>
          <button type="button" onClick={() => seek(Math.max(0, (ws?.getCurrentTime() || 0) - 5))}
            aria-label="Back 5 seconds" aria-keyshortcuts="j ArrowLeft">−5 s</button>
          <button type="button" onClick={() => seek((ws?.getCurrentTime() || 0) + 5)}
            aria-label="Forward 5 seconds" aria-keyshortcuts="l ArrowRight">+5 s</button>
          <span class="time" aria-live="off">{clock(now)} / {clock(duration)}</span>
          <label for="speed">Speed</label>
          <select id="speed" value={player.rate} onChange={(e) => setRate(Number(e.currentTarget.value))}>
            {SPEEDS.map((s) => <option key={s} value={s}>{s}×</option>)}
          </select>
          <label class="check"><input type="checkbox" checked={follow} onChange={(e) => setFollow(e.currentTarget.checked)} /> Follow</label>
        </div>
        {!player.ready && !player.error && <p class="muted small">Loading the recording…</p>}
        <Notice error={player.error} />
        <p class="muted small shortcuts">Keys: <kbd>Space</kbd>/<kbd>k</kbd> play or pause, <kbd>j</kbd>/<kbd>←</kbd> back 5 s,
          <kbd>l</kbd>/<kbd>→</kbd> forward 5 s, <kbd>[</kbd>/<kbd>]</kbd> slower/faster. Click a word to jump there.</p>
      </section>

      <div class="columns">
        <section class="card words-card" aria-labelledby="text-title">
          <div class="row between">
            <h2 id="text-title">Transcript <span class="muted small">revision {revision} · {transcript.model}
              {transcript.language ? ` · ${transcript.language}` : ""}</span></h2>
            {can("jobs:write") && (
              <div class="row">
                <button type="button" aria-pressed={editMode} onClick={() => { setEditMode(!editMode); setEditing(null); }}>
                  {editMode ? "Stop editing" : "Edit words"}
                </button>
                {pending > 0 && (
                  <>
                    <button type="button" class="primary" onClick={save} disabled={saving} data-testid="save-edits">
                      Save {pending} correction{pending > 1 ? "s" : ""} as revision
                    </button>
                    <button type="button" onClick={() => setEdits({})}>Discard</button>
                  </>
                )}
              </div>
            )}
          </div>
          {editMode && <p class="notice info">Click a word (or focus it and press Enter) to correct it; Enter keeps the correction, Escape cancels.
            Timings stay; the corrections become a new revision and this one is kept.</p>}
          <Notice error={saveError} />
          <p class="legend muted small"><span class="w low">underlined dots</span> = low confidence (under {percent(LOW_CONFIDENCE)})</p>
          <div class={`words ${editMode ? "editing" : ""}`} onClick={onWordsClick} data-testid="words">
            {transcript.segments.map((seg, s) => {
              const color = colors[seg.speaker_id];
              const first = words.findIndex((w) => w.seg === s);
              return (
                <div class="segment" key={seg.id} data-segment-id={seg.id} style={color ? { borderLeftColor: color } : undefined}>
                  <div class="segment-head">
                    {seg.speaker && <span class="chip" style={{ background: color || "#4a5a6a" }}>{seg.speaker}</span>}
                    <button type="button" class="link time" onClick={(e) => { e.stopPropagation(); seek(seg.start); }}
                      aria-label={`Play from ${clock(seg.start)}`}>{clock(seg.start)}</button>
                  </div>
                  <p>
                    {seg.words.length === 0 && seg.text}
                    {seg.words.map((w, i) => {
                      const fw = words[first + i];
                      return (
                        <Word key={fw.key} w={fw} editing={editing === fw.key} edited={edits[fw.key]} editMode={editMode}
                          onEdit={() => setEditing(fw.key)} onCommit={(v) => commit(fw, v)} onCancel={() => setEditing(null)} />
                      );
                    })}
                  </p>
                </div>
              );
            })}
          </div>
        </section>
        <aside class="side">
          <Speakers transcript={transcript} colors={colors} jobId={jobId} revision={revision} onChanged={reload} />
          <CallAnalytics jobId={jobId} revision={revision} colors={colors} seek={seek} />
          <Revisions jobId={jobId} revision={revision} revisions={revisions} />
          <section class="card" aria-label="Downloads"><Downloads jobId={jobId} revision={revision} name={name} /></section>
        </aside>
      </div>
    </div>
  );
}
