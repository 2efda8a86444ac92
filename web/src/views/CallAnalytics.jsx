// A call's conversation analytics beside its transcript: talk share per speaker, turns, interruptions (who
// interrupted whom), overlap, silences, speaking rate, sentiment and phrase hits; a time seeks the player there.
import { api } from "../api.js";
import { useLoad } from "../components.jsx";
import { clock, percent } from "../format.js";

function seconds(x) {
  return x == null ? "–" : `${x.toFixed(1)} s`;
}

function sentiment(x) {
  if (x == null) return "–";
  const word = x >= 0.05 ? "positive" : x <= -0.05 ? "negative" : "neutral";
  return `${word} (${x > 0 ? "+" : ""}${x.toFixed(2)})`;
}

function At({ t, seek, children }) {
  return <button type="button" class="link time" onClick={() => seek(t)} aria-label={`Play from ${clock(t)}`}>{children || clock(t)}</button>;
}

/** Talk share of each speaker as one stacked bar (plain SVG), in the speakers' colours. */
function ShareBar({ speakers, colors }) {
  let x = 0;
  return (
    <svg class="share-bar" viewBox="0 0 100 6" preserveAspectRatio="none" role="img"
      aria-label={speakers.map((s) => `${s.name || s.label} ${percent(s.talk_share)}`).join(", ")}>
      {speakers.map((s) => {
        const w = s.talk_share * 100;
        const rect = <rect key={s.id} x={x} y="0" width={w} height="6" fill={colors[s.id] || "#4a5a6a"} />;
        x += w;
        return rect;
      })}
    </svg>
  );
}

export function CallAnalytics({ jobId, revision, colors, seek }) {
  // the newest revision analysed: an edited revision is not analysed again, so it shows the analytics it came from
  const [a, error] = useLoad(() => api(`/v1/jobs/${jobId}/analytics`), [jobId, revision]);
  if (error) {
    return (
      <section class="card analytics" aria-labelledby="analytics-title">
        <h2 id="analytics-title">Analytics</h2>
        <p class="muted small">{error.status === 404 ? "Not computed yet." : error.message}</p>
      </section>
    );
  }
  if (!a) return null;
  const name = Object.fromEntries(a.speakers.map((s) => [s.id, s.name || s.label]));
  return (
    <section class="card analytics" aria-labelledby="analytics-title" data-testid="call-analytics">
      <h2 id="analytics-title">Analytics</h2>
      {a.revision !== revision && <p class="muted small">Of revision {a.revision}, the newest one analysed.</p>}
      <ShareBar speakers={a.speakers} colors={colors} />
      <table class="table compact">
        <caption class="visually-hidden">Per speaker</caption>
        <thead><tr><th scope="col">Speaker</th><th scope="col">Talk</th><th scope="col">Share</th><th scope="col">Turns</th>
          <th scope="col">Words/min</th><th scope="col">Sentiment</th></tr></thead>
        <tbody>
          {a.speakers.map((s) => (
            <tr key={s.id} data-speaker-id={s.id}>
              <th scope="row"><span class="swatch" style={{ background: colors[s.id] || "#4a5a6a" }} aria-hidden="true" /> {name[s.id]}</th>
              <td>{clock(s.talk_time)}</td><td>{percent(s.talk_share)}</td><td>{s.turns}</td>
              <td>{s.words_per_minute ?? "–"}</td><td>{sentiment(s.sentiment)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <dl class="facts">
        <dt>Turns</dt><dd>{a.turns}</dd>
        <dt>Longest monologue</dt>
        <dd>{a.longest_monologue ? <>{seconds(a.longest_monologue.end - a.longest_monologue.start)} by {name[a.longest_monologue.speaker]} at <At t={a.longest_monologue.start} seek={seek} /></> : "–"}</dd>
        <dt>Overlap</dt><dd>{seconds(a.overlap_time)}</dd>
        <dt>Silence</dt><dd>{seconds(a.silence_total)}{a.longest_silence && <> (longest {seconds(a.longest_silence.end - a.longest_silence.start)} at <At t={a.longest_silence.start} seek={seek} />)</>}</dd>
        <dt>Words per minute</dt><dd>{a.words_per_minute ?? "–"}</dd>
        <dt>Sentiment</dt><dd>{sentiment(a.sentiment)}</dd>
      </dl>
      <h3>Interruptions ({a.interruptions.length})</h3>
      {a.interruptions.length === 0 ? <p class="muted small">None.</p> : (
        <ul class="plain" data-testid="interruptions">
          {a.interruptions.map((i) => <li key={`${i.at}-${i.by}-${i.of}`}><At t={i.at} seek={seek} /> {name[i.by] || i.by} interrupted {name[i.of] || i.of}</li>)}
        </ul>
      )}
      {a.silences.length > 0 && (
        <>
          <h3>Silences of {a.silence_threshold} s or more</h3>
          <ul class="plain">{a.silences.map((g) => <li key={g.start}><At t={g.start} seek={seek} /> {seconds(g.end - g.start)}</li>)}</ul>
        </>
      )}
      <h3>Phrases</h3>
      {a.required_missing.length > 0 && (
        <ul class="plain missing" data-testid="missing-phrases">
          {a.required_missing.map((m) => <li key={m.phrase_id}><span class="badge status-failed">missing</span> “{m.phrase}”{m.speaker ? ` (${m.speaker})` : ""}</li>)}
        </ul>
      )}
      {a.phrase_hits.length === 0 && a.required_missing.length === 0 && <p class="muted small">No listed phrase was said.</p>}
      <ul class="plain" data-testid="phrase-hits">
        {a.phrase_hits.map((h) => (
          <li key={`${h.phrase_id}-${h.start}`}><At t={h.start} seek={seek} /> <span class={`badge ${h.kind === "required" ? "status-completed" : "status-running"}`}>{h.kind}</span> “{h.phrase}” by {name[h.speaker] || h.speaker}
            {h.score < 100 && <span class="muted small"> heard “{h.text}” ({Math.round(h.score)}%)</span>}</li>
        ))}
      </ul>
    </section>
  );
}
