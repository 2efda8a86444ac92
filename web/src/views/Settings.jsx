// Settings: API keys (created, shown once, revoked), webhooks with their delivery log, retention, usage.
import { useState } from "preact/hooks";
import { api, can, qs, session } from "../api.js";
import { Empty, Notice, PageHeader, useConfirm, useLoad } from "../components.jsx";
import { clock, when } from "../format.js";

const TABS = [
  ["keys", "API keys", "keys:manage"],
  ["webhooks", "Webhooks", "webhooks:manage"],
  ["retention", "Retention", "org:manage"],
  ["usage", "Usage", "usage:read"],
];
const EVENTS = ["job.completed", "job.failed", "job.running", "transcript.completed"];
const KEY_ROLES = ["api_client", "user", "org_admin"];

function Keys() {
  const [data, error, reload] = useLoad(() => api("/v1/keys"), []);
  const [created, setCreated] = useState(null);
  const [failure, setFailure] = useState(null);
  const [confirm, dialog] = useConfirm();
  const create = async (e) => {
    e.preventDefault();
    const target = e.currentTarget;
    const form = new FormData(target);
    setFailure(null);
    try {
      const key = await api("/v1/keys", { method: "POST", json: { name: form.get("name"), role: form.get("role") } });
      setCreated(key);
      target.reset();
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  const revoke = async (key) => {
    if (!(await confirm(`Revoke the key “${key.name}”? Programs using it stop working at once.`, "Revoke"))) return;
    try {
      await api(`/v1/keys/${key.id}`, { method: "DELETE" });
      if (created?.id === key.id) setCreated(null);
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  const copy = () => navigator.clipboard?.writeText(created.key);
  const keys = data?.keys || [];
  return (
    <section aria-labelledby="keys-title">
      <h2 id="keys-title">API keys</h2>
      <form class="card inline-form" onSubmit={create}>
        <div class="field">
          <label for="k-name">Name</label>
          <input id="k-name" name="name" required maxLength={200} placeholder="e.g. CRM integration" />
        </div>
        <div class="field">
          <label for="k-role">Role</label>
          <select id="k-role" name="role">{KEY_ROLES.map((r) => <option key={r}>{r}</option>)}</select>
        </div>
        <button type="submit" class="primary">Create key</button>
      </form>
      {created && (
        <div class="card secret" role="status" data-testid="new-key">
          <p><strong>Copy the key “{created.name}” now: it is shown only once.</strong></p>
          <p><code class="key" data-testid="key-secret">{created.key}</code> <button type="button" onClick={copy}>Copy</button></p>
          <p class="small muted">Send it as <code>Authorization: Bearer &lt;key&gt;</code>.</p>
          <button type="button" onClick={() => setCreated(null)}>Done</button>
        </div>
      )}
      <Notice error={error || failure} />
      {data && keys.length === 0 && <Empty>No API keys.</Empty>}
      {keys.length > 0 && (
        <table class="table">
          <caption class="visually-hidden">API keys</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col">State</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            {keys.map((k) => (
              <tr key={k.id} data-key-id={k.id} class={k.revoked ? "revoked" : ""}>
                <td>{k.name}</td><td>{k.role}</td><td>{when(k.created_at)}</td><td>{when(k.last_used_at)}</td>
                <td>{k.revoked ? "revoked" : "active"}</td>
                <td class="actions">{!k.revoked && (
                  <button type="button" class="link danger" onClick={() => revoke(k)} aria-label={`Revoke ${k.name}`}>Revoke</button>
                )}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {dialog}
    </section>
  );
}

function Deliveries({ sub }) {
  const [data, error, reload] = useLoad(() => api(`/v1/webhooks/${sub.id}/deliveries?limit=50`), [sub.id]);
  const [failure, setFailure] = useState(null);
  const redeliver = async (d) => {
    try {
      await api(`/v1/webhooks/${sub.id}/deliveries/${d.id}/redeliver`, { method: "POST" });
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  return (
    <div class="deliveries">
      <div class="row between"><h4>Delivery log</h4><button type="button" onClick={reload}>Refresh</button></div>
      <Notice error={error || failure} />
      {data && data.deliveries.length === 0 && <Empty>No deliveries yet.</Empty>}
      {data && data.deliveries.length > 0 && (
        <table class="table small">
          <caption class="visually-hidden">Deliveries of {sub.url}</caption>
          <thead><tr><th scope="col">Event</th><th scope="col">Job</th><th scope="col">Status</th><th scope="col">Attempts</th><th scope="col">Last answer</th><th scope="col">When</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            {data.deliveries.map((d) => (
              <tr key={d.id}>
                <td>{d.event_type}</td><td>{d.job_id || "–"}</td><td>{d.status}</td><td>{d.attempts}</td>
                <td>{d.last_status || d.last_error || "–"}</td><td>{when(d.created_at)}</td>
                <td><button type="button" class="link" onClick={() => redeliver(d)}>Redeliver</button></td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function Webhooks() {
  const [data, error, reload] = useLoad(() => api("/v1/webhooks"), []);
  const [created, setCreated] = useState(null);
  const [open, setOpen] = useState(null);
  const [failure, setFailure] = useState(null);
  const [confirm, dialog] = useConfirm();
  const act = async (fn) => {
    setFailure(null);
    try {
      await fn();
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  const create = (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    const target = e.currentTarget;
    act(async () => {
      const sub = await api("/v1/webhooks", { method: "POST", json: {
        url: form.get("url"), events: form.getAll("events"), description: form.get("description") || undefined,
      } });
      setCreated(sub);
      target.reset();
    });
  };
  return (
    <section aria-labelledby="wh-title">
      <h2 id="wh-title">Webhooks</h2>
      <form class="card" onSubmit={create}>
        <div class="field">
          <label for="wh-url">Endpoint URL</label>
          <input id="wh-url" name="url" type="url" required placeholder="https://example.com/hooks/streamscribe" />
        </div>
        <fieldset>
          <legend>Events</legend>
          {EVENTS.map((ev) => <label key={ev} class="check"><input type="checkbox" name="events" value={ev} defaultChecked={ev === "job.completed"} /> {ev}</label>)}
        </fieldset>
        <div class="field">
          <label for="wh-desc">Description</label>
          <input id="wh-desc" name="description" maxLength={500} />
        </div>
        <button type="submit" class="primary">Add webhook</button>
      </form>
      {created && (
        <div class="card secret" role="status">
          <p><strong>Signing secret for {created.url} (shown once):</strong> <code class="key">{created.secret}</code></p>
          <button type="button" onClick={() => setCreated(null)}>Done</button>
        </div>
      )}
      <Notice error={error || failure} />
      {data && data.webhooks.length === 0 && <Empty>No webhooks.</Empty>}
      <ul class="webhooks">
        {(data?.webhooks || []).map((sub) => (
          <li key={sub.id} class="card">
            <div class="row between">
              <div>
                <strong>{sub.url}</strong> <span class={`badge ${sub.active ? "status-completed" : "status-cancelled"}`}>{sub.active ? "active" : "paused"}</span>
                <div class="small muted">{sub.events.join(", ")} · secret …{sub.secret_hint} {sub.description ? `· ${sub.description}` : ""}</div>
              </div>
              <div class="row">
                <button type="button" onClick={() => setOpen(open === sub.id ? null : sub.id)} aria-expanded={open === sub.id}>Deliveries</button>
                <button type="button" onClick={() => act(() => api(`/v1/webhooks/${sub.id}/test`, { method: "POST" }))} disabled={!sub.active}>Send test</button>
                <button type="button" onClick={() => act(() => api(`/v1/webhooks/${sub.id}`, { method: "PATCH", json: { active: !sub.active } }))}>
                  {sub.active ? "Pause" : "Resume"}
                </button>
                <button type="button" class="danger" onClick={async () => {
                  if (await confirm(`Delete the webhook to ${sub.url}?`, "Delete")) act(() => api(`/v1/webhooks/${sub.id}`, { method: "DELETE" }));
                }}>Delete</button>
              </div>
            </div>
            {open === sub.id && <Deliveries sub={sub} />}
          </li>
        ))}
      </ul>
      {dialog}
    </section>
  );
}

function Retention() {
  const [data, error, reload] = useLoad(() => api("/v1/organizations"), []);
  const [saved, setSaved] = useState(null);
  const [failure, setFailure] = useState(null);
  const me = session().me;
  const org = (data?.organizations || []).find((o) => o.id === me?.org_id);
  const save = async (e) => {
    e.preventDefault();
    const value = String(new FormData(e.currentTarget).get("days") || "").trim();
    setFailure(null);
    try {
      await api(`/v1/organizations/${org.id}`, { method: "PATCH", json: { retention_days: value ? Number(value) : null } });
      setSaved(value ? `Recordings and transcripts are now kept for ${value} days.` : "Data is now kept until deleted.");
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  return (
    <section aria-labelledby="ret-title">
      <h2 id="ret-title">Retention</h2>
      <Notice error={error || failure} />
      {org && (
        <form class="card inline-form" onSubmit={save}>
          <div class="field">
            <label for="ret-days">Keep jobs of {org.name} for (days)</label>
            <input id="ret-days" name="days" type="number" min="1" defaultValue={org.retention_days ?? ""} placeholder="forever"
              aria-describedby="ret-hint" />
            <small id="ret-hint" class="hint">Older jobs, their audio and transcripts are erased. Empty keeps them until deleted.</small>
          </div>
          <button type="submit" class="primary">Save</button>
        </form>
      )}
      {saved && <p class="notice info" role="status">{saved}</p>}
    </section>
  );
}

function Usage() {
  const [range, setRange] = useState({ from: "", to: "" });
  const [data, error] = useLoad(() => api(`/v1/usage${qs({
    from: range.from ? new Date(`${range.from}T00:00:00`).toISOString() : "",
    to: range.to ? new Date(`${range.to}T23:59:59`).toISOString() : "",
  })}`), [range.from, range.to]);
  return (
    <section aria-labelledby="usage-title">
      <h2 id="usage-title">Usage</h2>
      <form class="card inline-form" onSubmit={(e) => e.preventDefault()}>
        <div class="field"><label for="u-from">From</label>
          <input id="u-from" type="date" value={range.from} onChange={(e) => setRange({ ...range, from: e.currentTarget.value })} /></div>
        <div class="field"><label for="u-to">To</label>
          <input id="u-to" type="date" value={range.to} onChange={(e) => setRange({ ...range, to: e.currentTarget.value })} /></div>
      </form>
      <Notice error={error} />
      {data && data.organizations.length === 0 && <Empty>No usage in this period.</Empty>}
      {data && data.organizations.length > 0 && (
        <table class="table">
          <caption class="visually-hidden">Usage by organization</caption>
          <thead><tr><th scope="col">Organization</th><th scope="col">Audio transcribed</th><th scope="col">By source</th><th scope="col">Jobs</th></tr></thead>
          <tbody>
            {data.organizations.map((o) => (
              <tr key={o.org_id}>
                <td>{o.org_id}</td><td>{clock(o.audio_seconds)}</td>
                <td>{Object.entries(o.by_source).map(([k, v]) => `${k} ${clock(v)}`).join(", ") || "–"}</td>
                <td>{Object.entries(o.jobs).map(([k, v]) => `${v} ${k}`).join(", ")}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function Settings({ tab }) {
  const tabs = TABS.filter(([, , scope]) => can(scope));
  const current = tabs.find(([id]) => id === tab)?.[0] || tabs[0]?.[0];
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Settings" />
      <nav class="tabs" aria-label="Settings">
        {tabs.map(([id, label]) => (
          <a key={id} href={`#/settings/${id}`} aria-current={id === current ? "page" : undefined}>{label}</a>
        ))}
      </nav>
      {current === "keys" && <Keys />}
      {current === "webhooks" && <Webhooks />}
      {current === "retention" && <Retention />}
      {current === "usage" && <Usage />}
      {!current && <Empty>Nothing to set for your role.</Empty>}
    </section>
  );
}
