// Upload several recordings at once (drag and drop, or a file picker) with the job options.
import { useEffect, useRef, useState } from "preact/hooks";
import { api } from "../api.js";
import { bytes } from "../format.js";

const REDACT = [["email", "Email addresses"], ["phone", "Phone numbers"], ["card", "Card numbers"], ["id", "ID numbers"]];

function options(form) {
  const data = new FormData(form);
  const out = {};
  for (const name of ["model", "language", "diarize", "min_speakers", "max_speakers", "speaker_names", "tags",
    "priority", "initial_prompt", "hotwords", "beam_size"]) {
    const value = String(data.get(name) || "").trim();
    if (value) out[name] = value;
  }
  const redact = data.getAll("redact").map(String);
  if (redact.length === REDACT.length) out.redact = "all";
  else if (redact.length) out.redact = redact.join(",");
  return out;
}

export function Upload({ onQueued }) {
  const [models, setModels] = useState(null);
  const [files, setFiles] = useState([]);
  const [over, setOver] = useState(false);
  const [uploads, setUploads] = useState([]);
  const form = useRef(null);
  const picker = useRef(null);

  useEffect(() => {
    api("/v1/models").then(setModels, () => setModels({ default: "", models: [] }));
  }, []);

  const add = (list) => setFiles((old) => [...old, ...Array.from(list || [])]);
  const onDrop = (e) => {
    e.preventDefault();
    setOver(false);
    add(e.dataTransfer?.files);
  };

  const submit = async (e) => {
    e.preventDefault();
    if (!files.length) return;
    const opts = options(form.current);
    const batch = files.map((file, i) => ({ id: `${Date.now()}-${i}`, name: file.name, state: "uploading", file }));
    setFiles([]);
    setUploads((old) => [...batch, ...old]);
    await Promise.all(batch.map(async (item) => {
      const body = new FormData();
      body.append("file", item.file, item.file.name);
      for (const [k, v] of Object.entries(opts)) body.append(k, v);
      let patch;
      try {
        const created = await api("/v1/jobs", { method: "POST", form: body });
        patch = { state: "queued", jobId: created.job_id };
        const job = await api(`/v1/jobs/${created.job_id}`);
        onQueued(job);
      } catch (err) {
        patch = { state: "failed", error: err.message };
      }
      setUploads((old) => old.map((u) => (u.id === item.id ? { ...u, ...patch, file: undefined } : u)));
    }));
  };

  const modelList = models?.models || [];
  return (
    <form ref={form} class="card upload" onSubmit={submit} aria-labelledby="upload-title">
      <h2 id="upload-title">Transcribe recordings</h2>
      <div
        class={`dropzone ${over ? "over" : ""}`}
        onDragOver={(e) => { e.preventDefault(); setOver(true); }}
        onDragLeave={() => setOver(false)}
        onDrop={onDrop}
        data-testid="dropzone"
      >
        <p>Drop audio or video files here, or</p>
        <button type="button" onClick={() => picker.current?.click()}>Choose files…</button>
        <input ref={picker} id="upload-files" type="file" multiple accept="audio/*,video/*" class="visually-hidden"
          aria-label="Recordings to transcribe" onChange={(e) => { add(e.currentTarget.files); e.currentTarget.value = ""; }} />
        {files.length > 0 && (
          <ul class="files" aria-label="Files to upload">
            {files.map((f, i) => (
              <li key={`${f.name}-${i}`}>
                {f.name} <span class="muted">{bytes(f.size)}</span>
                <button type="button" class="link" aria-label={`Remove ${f.name}`}
                  onClick={() => setFiles(files.filter((_, j) => j !== i))}>Remove</button>
              </li>
            ))}
          </ul>
        )}
      </div>
      <details class="options">
        <summary>Options</summary>
        <div class="grid">
          <div class="field">
            <label for="o-model">Model</label>
            <select id="o-model" name="model">
              {modelList.map((m) => (
                <option key={m.name} value={m.name} selected={m.name === models.default}>{m.name}</option>
              ))}
            </select>
          </div>
          <div class="field">
            <label for="o-language">Language</label>
            <input id="o-language" name="language" placeholder="auto, or e.g. en" maxLength={8} />
          </div>
          <div class="field">
            <label for="o-diarize">Speakers</label>
            <select id="o-diarize" name="diarize">
              <option value="auto">Automatic</option>
              <option value="channels">One per channel</option>
              <option value="acoustic">By voice</option>
              <option value="off">Off</option>
            </select>
          </div>
          <div class="field">
            <label for="o-min">Min speakers</label>
            <input id="o-min" name="min_speakers" type="number" min="1" max="20" />
          </div>
          <div class="field">
            <label for="o-max">Max speakers</label>
            <input id="o-max" name="max_speakers" type="number" min="1" max="20" />
          </div>
          <div class="field">
            <label for="o-names">Channel names</label>
            <input id="o-names" name="speaker_names" placeholder="agent,customer" aria-describedby="o-names-hint" />
            <small class="hint" id="o-names-hint">For recordings with one party per channel.</small>
          </div>
          <div class="field">
            <label for="o-tags">Tags</label>
            <input id="o-tags" name="tags" placeholder="sales,q4" aria-describedby="o-tags-hint" />
            <small class="hint" id="o-tags-hint">Comma-separated.</small>
          </div>
          <div class="field">
            <label for="o-priority">Priority</label>
            <select id="o-priority" name="priority">
              <option value="normal">Normal</option>
              <option value="high">High</option>
              <option value="low">Low</option>
            </select>
          </div>
          <div class="field">
            <label for="o-beam">Beam size</label>
            <input id="o-beam" name="beam_size" type="number" min="1" max="10" placeholder="5" />
          </div>
          <div class="field wide">
            <label for="o-prompt">Initial prompt</label>
            <input id="o-prompt" name="initial_prompt" placeholder="Names and terms that will come up" />
          </div>
          <div class="field wide">
            <label for="o-hotwords">Hotwords</label>
            <input id="o-hotwords" name="hotwords" />
          </div>
          <fieldset class="wide">
            <legend>Redact</legend>
            {REDACT.map(([value, label]) => (
              <label key={value} class="check"><input type="checkbox" name="redact" value={value} /> {label}</label>
            ))}
          </fieldset>
        </div>
      </details>
      <div class="row">
        <button type="submit" class="primary" disabled={!files.length}>
          {files.length > 1 ? `Transcribe ${files.length} files` : "Transcribe"}
        </button>
      </div>
      {uploads.length > 0 && (
        <ul class="uploads" aria-live="polite" aria-label="Uploads">
          {uploads.slice(0, 10).map((u) => (
            <li key={u.id} class={`upload-${u.state}`}>
              {u.name}: {u.state === "uploading" ? "uploading…" : u.state === "queued" ? "queued" : `failed: ${u.error}`}
            </li>
          ))}
        </ul>
      )}
    </form>
  );
}
