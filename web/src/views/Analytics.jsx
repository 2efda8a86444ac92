// The organization's live aggregates (hourly or daily windows, for the whole organization or one named
// speaker such as "agent") as charts, and its phrase lists (required and watched phrases).
import { useState } from "preact/hooks";
import { api, can, qs } from "../api.js";
import { Empty, Notice, PageHeader, useLoad } from "../components.jsx";
import { percent } from "../format.js";
import { go, href } from "../router.js";

const RANGES = [["24h", "Last 24 hours", 24 * 3600e3], ["7d", "Last 7 days", 7 * 86400e3], ["30d", "Last 30 days", 30 * 86400e3]];

function label(iso, granularity) {
  const d = new Date(iso);
  return granularity === "day"
    ? d.toLocaleDateString(undefined, { month: "short", day: "numeric" })
    : d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
}

/** A bar chart in plain SVG, with the same figures in a table for screen readers. */
export function Bars({ title, points, format = (v) => String(v), testid }) {
  const width = 640;
  const height = 160;
  const pad = 24;
  const max = Math.max(...points.map((p) => p.value ?? 0), 0) || 1;
  const step = (width - pad) / Math.max(points.length, 1);
  return (
    <figure class="chart card" data-testid={testid}>
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${width} ${height + 20}`} role="img" aria-label={title}>
        <line x1={pad} y1={height} x2={width} y2={height} class="axis" />
        <text x={pad - 4} y={12} class="tick" text-anchor="end">{format(max)}</text>
        {points.map((p, i) => {
          const h = ((p.value ?? 0) / max) * (height - 16);
          const x = pad + i * step + step * 0.15;
          return (
            <g key={p.label + i}>
              <rect x={x} y={height - h} width={step * 0.7} height={h} class="bar"><title>{`${p.label}: ${format(p.value)}`}</title></rect>
              {(points.length <= 12 || i % Math.ceil(points.length / 12) === 0) && (
                <text x={x + step * 0.35} y={height + 14} class="tick" text-anchor="middle">{p.label}</text>
              )}
            </g>
          );
        })}
      </svg>
      <table class="visually-hidden">
        <caption>{title}</caption>
        <tbody>{points.map((p, i) => <tr key={i}><th scope="row">{p.label}</th><td>{format(p.value)}</td></tr>)}</tbody>
      </table>
    </figure>
  );
}

function Phrases() {
  const [data, error, reload] = useLoad(() => api("/v1/analytics/phrases"), []);
  const [problem, setProblem] = useState(null);
  const manage = can("analytics:manage");
  const add = async (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setProblem(null);
    try {
      await api("/v1/analytics/phrases", {
        method: "POST",
        json: { phrase: form.get("phrase"), kind: form.get("kind"), speaker: form.get("speaker") || null,
          threshold: Number(form.get("threshold")) },
      });
      e.currentTarget?.reset();
      reload();
    } catch (err) {
      setProblem(err);
    }
  };
  const remove = async (p) => {
    setProblem(null);
    try {
      await api(`/v1/analytics/phrases/${p.id}`, { method: "DELETE" });
      reload();
    } catch (err) {
      setProblem(err);
    }
  };
  return (
    <section class="card" aria-labelledby="phrases-title" data-testid="phrase-lists">
      <h2 id="phrases-title">Phrase lists</h2>
      <p class="muted small">Required phrases are expected in every call (a call without one is flagged, and a webhook can
        tell you); watched phrases are counted when said. Matching forgives recognition errors down to the threshold.</p>
      <Notice error={error || problem} />
      {data && data.phrases.length === 0 && <Empty>No phrases listed yet.</Empty>}
      {data && data.phrases.length > 0 && (
        <table class="table">
          <thead><tr><th scope="col">Phrase</th><th scope="col">Kind</th><th scope="col">Said by</th><th scope="col">Threshold</th>{manage && <th scope="col"><span class="visually-hidden">Actions</span></th>}</tr></thead>
          <tbody>
            {data.phrases.map((p) => (
              <tr key={p.id}>
                <td>“{p.phrase}”</td><td>{p.kind}</td><td>{p.speaker || "anyone"}</td><td>{p.threshold}</td>
                {manage && <td><button type="button" class="link danger" onClick={() => remove(p)} aria-label={`Remove “${p.phrase}”`}>Remove</button></td>}
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {manage && (
        <form class="row" onSubmit={add}>
          <div class="field grow"><label for="ph-text">Phrase</label><input id="ph-text" name="phrase" required maxLength={200} placeholder="thank you for calling" /></div>
          <div class="field"><label for="ph-kind">Kind</label>
            <select id="ph-kind" name="kind"><option value="required">required</option><option value="watched">watched</option></select></div>
          <div class="field"><label for="ph-speaker">Said by</label><input id="ph-speaker" name="speaker" placeholder="anyone (or e.g. agent)" /></div>
          <div class="field"><label for="ph-threshold">Threshold</label><input id="ph-threshold" name="threshold" type="number" min="50" max="100" defaultValue="85" /></div>
          <button type="submit" class="primary">Add phrase</button>
        </form>
      )}
    </section>
  );
}

export function Analytics({ query }) {
  const granularity = query.granularity === "day" ? "day" : "hour";
  const range = RANGES.find((r) => r[0] === query.range) || (granularity === "day" ? RANGES[2] : RANGES[0]);
  const speaker = query.speaker || "";
  const from = new Date(Date.now() - range[2]).toISOString();
  const [data, error] = useLoad(() => api(`/v1/analytics${qs({ granularity, from, speaker })}`),
    [granularity, range[0], speaker]);
  const set = (change) => go(href("/analytics", { granularity, range: range[0], speaker, ...change }).slice(1));
  const points = (field) => (data?.windows || []).map((w) => ({ label: label(w.start, granularity), value: w[field] }));
  const t = data?.totals;
  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Analytics" />
      <form class="card filters" onSubmit={(e) => e.preventDefault()}>
        <div class="field"><label for="a-gran">Windows</label>
          <select id="a-gran" value={granularity} onChange={(e) => set({ granularity: e.currentTarget.value })}>
            <option value="hour">hourly</option><option value="day">daily</option></select></div>
        <div class="field"><label for="a-range">Period</label>
          <select id="a-range" value={range[0]} onChange={(e) => set({ range: e.currentTarget.value })}>
            {RANGES.map(([k, text]) => <option key={k} value={k}>{text}</option>)}</select></div>
        <div class="field"><label for="a-speaker">Speaker</label>
          <select id="a-speaker" value={speaker} onChange={(e) => set({ speaker: e.currentTarget.value })}>
            <option value="">whole organization</option>
            {(data?.speakers || []).map((s) => <option key={s} value={s}>{s}</option>)}</select></div>
      </form>
      <Notice error={error} />
      {data && data.windows.length === 0 && <Empty>No calls analyzed in this period.</Empty>}
      {t && data.windows.length > 0 && (
        <>
          <dl class="card totals" data-testid="analytics-totals">
            <div><dt>Calls</dt><dd>{t.calls}</dd></div>
            <div><dt>Audio</dt><dd>{t.audio_minutes.toFixed(1)} min</dd></div>
            <div><dt>Average handle time</dt><dd>{t.average_handle_time?.toFixed(1)} s</dd></div>
            {speaker && <div><dt>Mean talk share</dt><dd>{percent(t.mean_talk_share)}</dd></div>}
            <div><dt>Interruptions per call</dt><dd>{t.interruptions_per_call?.toFixed(2)}</dd></div>
            <div><dt>Calls missing a required phrase</dt><dd>{percent(t.required_missing_rate)}</dd></div>
          </dl>
          <div class="charts">
            <Bars title="Calls" points={points("calls")} testid="chart-calls" />
            <Bars title="Average handle time (s)" points={points("average_handle_time")} format={(v) => (v ?? 0).toFixed(0)} />
            {speaker
              ? <Bars title={`Mean talk share of ${speaker}`} points={points("mean_talk_share")} format={percent} />
              : <Bars title="Interruptions per call" points={points("interruptions_per_call")} format={(v) => (v ?? 0).toFixed(2)} />}
          </div>
          <section class="card" aria-labelledby="rates-title">
            <h2 id="rates-title">Phrase-hit rates</h2>
            <table class="table" data-testid="phrase-rates">
              <thead><tr><th scope="col">Phrase</th><th scope="col">Kind</th><th scope="col">Calls</th><th scope="col">Rate</th></tr></thead>
              <tbody>
                {Object.entries(data.phrases).map(([id, p]) => (
                  <tr key={id}><td>“{p.phrase}”</td><td>{p.kind}</td><td>{t.phrase_hits[id] || 0}</td>
                    <td><meter min="0" max="1" value={t.phrase_hit_rates[id] || 0} /> {percent(t.phrase_hit_rates[id] || 0)}</td></tr>
                ))}
              </tbody>
            </table>
          </section>
        </>
      )}
      <Phrases />
    </section>
  );
}
