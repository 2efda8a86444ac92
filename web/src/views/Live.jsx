// Live transcription from the browser's microphone into /v1/live: 16 kHz 16-bit PCM from an AudioWorklet,
// partials and finals shown as they are spoken; the session is saved as a job.
import { useEffect, useRef, useState } from "preact/hooks";
import { accessToken, api, renew } from "../api.js";
import { Notice, PageHeader } from "../components.jsx";
import { clock } from "../format.js";
import { href } from "../router.js";

const RATE = 16000;

/** A WebSocket to /v1/live; the access token travels as a subprotocol, never in the URL. */
export async function liveSocket() {
  if (!accessToken()) await renew();
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const ws = new WebSocket(`${scheme}//${location.host}/v1/live`, ["streamscribe", `bearer.${accessToken()}`]);
  ws.binaryType = "arraybuffer";
  return ws;
}

async function microphone() {
  const stream = await navigator.mediaDevices.getUserMedia({
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  let ctx;
  try {
    ctx = new AudioContext({ sampleRate: RATE });
  } catch {
    ctx = new AudioContext();
  }
  await ctx.audioWorklet.addModule("/static/app/pcm-worklet.js");
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, "pcm16", { processorOptions: { targetRate: RATE } });
  const mute = ctx.createGain();
  mute.gain.value = 0;
  source.connect(node);
  node.connect(mute).connect(ctx.destination);
  return {
    node,
    stop: async () => {
      stream.getTracks().forEach((t) => t.stop());
      source.disconnect();
      node.disconnect();
      await ctx.close();
    },
  };
}

function level(buffer) {
  const pcm = new Int16Array(buffer);
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i] * pcm[i];
  return Math.min(1, Math.sqrt(sum / Math.max(1, pcm.length)) / 8000);
}

export function Live() {
  const [state, setState] = useState("idle"); // idle, starting, live, finishing, done
  const [finals, setFinals] = useState([]);
  const [partial, setPartial] = useState(null);
  const [jobId, setJobId] = useState(null);
  const [error, setError] = useState(null);
  const [meter, setMeter] = useState(0);
  const [models, setModels] = useState(null);
  const session = useRef(null);

  useEffect(() => {
    api("/v1/models").then(setModels, () => {});
    return () => stopAll(true);
  }, []);

  const stopAll = async (abandon) => {
    const s = session.current;
    if (!s) return;
    if (s.mic) await s.mic.stop().catch(() => {});
    s.mic = null;
    if (abandon && s.ws.readyState <= 1) s.ws.close();
  };

  const start = async (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setError(null);
    setFinals([]);
    setPartial(null);
    setJobId(null);
    setState("starting");
    try {
      const mic = await microphone();
      const ws = await liveSocket();
      const s = { ws, mic, started: false, queue: [] };
      session.current = s;
      mic.node.port.onmessage = (msg) => {
        setMeter(level(msg.data));
        if (s.started && ws.readyState === 1) ws.send(msg.data);
        else s.queue.push(msg.data);
      };
      ws.onopen = () => {
        const start = { type: "start", sample_rate: RATE, channels: 1, encoding: "pcm_s16le" };
        for (const name of ["model", "language"]) {
          const value = String(form.get(name) || "").trim();
          if (value) start[name] = value;
        }
        ws.send(JSON.stringify(start));
      };
      ws.onmessage = (m) => {
        const msg = JSON.parse(m.data);
        if (msg.type === "started") {
          s.started = true;
          setJobId(msg.job_id);
          setState("live");
          for (const chunk of s.queue.splice(0)) ws.send(chunk);
        } else if (msg.type === "partial") {
          setPartial(msg.segment);
        } else if (msg.type === "final") {
          setFinals((old) => [...old, msg.segment]);
          setPartial((p) => (p && p.id === msg.segment.id ? null : p));
        } else if (msg.type === "completed") {
          setState("done");
          setPartial(null);
        } else if (msg.type === "error") {
          setError(new Error(msg.message));
        }
      };
      ws.onerror = () => setError(new Error("the connection to the gateway failed"));
      ws.onclose = () => {
        stopAll(false);
        setState((st) => (st === "done" ? st : st === "finishing" ? "done" : "idle"));
      };
    } catch (err) {
      setError(err.name === "NotAllowedError" ? new Error("Microphone access was refused.") : err);
      setState("idle");
    }
  };

  const stop = async () => {
    const s = session.current;
    if (!s) return;
    setState("finishing");
    await stopAll(false);
    if (s.ws.readyState === 1) s.ws.send(JSON.stringify({ type: "stop" }));
  };

  const busy = state === "starting" || state === "live" || state === "finishing";
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Live transcription" />
      <form class="card live-controls" onSubmit={start}>
        <div class="field">
          <label for="l-model">Model</label>
          <select id="l-model" name="model" disabled={busy}>
            {(models?.models || []).map((m) => (
              <option key={m.name} value={m.name} selected={m.name === models.default}>{m.name}</option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="l-language">Language</label>
          <input id="l-language" name="language" placeholder="auto, or e.g. en" disabled={busy} maxLength={8} />
        </div>
        {!busy ? (
          <button type="submit" class="primary" data-testid="live-start">Start recording</button>
        ) : (
          <button type="button" class="danger" onClick={stop} disabled={state !== "live"} data-testid="live-stop">
            {state === "finishing" ? "Finishing…" : "Stop"}
          </button>
        )}
        <meter min="0" max="1" value={meter} aria-label="Microphone level" />
        <span role="status" class="muted" data-state={state} data-testid="live-state">
          {{ idle: "Ready", starting: "Starting…", live: "Listening", finishing: "Finishing the last words…", done: "Saved" }[state]}
        </span>
      </form>
      <Notice error={error} />
      <section class="card live-text" aria-labelledby="live-title">
        <h2 id="live-title">What was said</h2>
        <div class="finals" data-testid="finals" aria-live="polite">
          {finals.map((seg) => (
            <p key={seg.id} class="final"><span class="muted small">{clock(seg.start)}</span> {seg.text}</p>
          ))}
        </div>
        {partial && <p class="partial" data-testid="partial" aria-live="off">{partial.text}</p>}
        {!finals.length && !partial && <p class="muted">Start recording and speak; the words appear here.</p>}
        {jobId && (
          <p class="small">
            Saved as a job: <a href={href(`/jobs/${jobId}`)} data-testid="live-job">{state === "done" ? "open the transcript" : jobId}</a>
          </p>
        )}
      </section>
    </section>
  );
}
