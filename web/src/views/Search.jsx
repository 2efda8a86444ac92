// Full-text search over the organization's transcripts; a hit opens its transcript playing at its time.
import { useEffect, useState } from "preact/hooks";
import { api, qs } from "../api.js";
import { Empty, Notice, PageHeader } from "../components.jsx";
import { clock, when } from "../format.js";
import { go, href } from "../router.js";

/** A snippet with <mark>…</mark> around the matches, as text and <mark> elements (never as HTML). */
export function Snippet({ text }) {
  const parts = String(text || "").split(/(<mark>.*?<\/mark>)/g);
  return (
    <span class="snippet">
      {parts.map((p, i) => (p.startsWith("<mark>") ? <mark key={i}>{p.slice(6, -7)}</mark> : <span key={i}>{p}</span>))}
    </span>
  );
}

export function Search({ query }) {
  const [result, setResult] = useState(null);
  const [error, setError] = useState(null);
  const q = query.q || "";

  useEffect(() => {
    if (!q) {
      setResult(null);
      return;
    }
    setError(null);
    api(`/v1/search${qs({ q, speaker: query.speaker, tag: query.tag, limit: 50 })}`).then(setResult, setError);
  }, [q, query.speaker, query.tag]);

  const submit = (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    go(href("/search", { q: form.get("q"), speaker: form.get("speaker"), tag: form.get("tag") }).slice(1));
  };

  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Search" />
      <form class="card search-form" role="search" onSubmit={submit}>
        <div class="field grow">
          <label for="q">Words or phrases</label>
          <input id="q" name="q" type="search" defaultValue={q} required placeholder='e.g. budget or "next quarter"' />
        </div>
        <div class="field">
          <label for="s-speaker">Speaker</label>
          <input id="s-speaker" name="speaker" defaultValue={query.speaker || ""} />
        </div>
        <div class="field">
          <label for="s-tag">Tag</label>
          <input id="s-tag" name="tag" defaultValue={query.tag || ""} />
        </div>
        <button type="submit" class="primary">Search</button>
      </form>
      <Notice error={error} />
      {result && result.hits.length === 0 && <Empty>Nothing found for “{result.query}”.</Empty>}
      {result && result.hits.length > 0 && (
        <ol class="hits" aria-label="Results">
          {result.hits.map((hit) => (
            <li key={`${hit.job_id}-${hit.segment_id}`} class="card hit">
              <a href={href(`/jobs/${hit.job_id}`, { rev: hit.revision, t: hit.start, play: 1 })} data-job-id={hit.job_id}>
                <strong>{hit.filename || hit.job_id}</strong> at {clock(hit.start)}
              </a>
              <span class="muted small"> {hit.speaker ? `${hit.speaker} · ` : ""}{when(hit.created_at)}</span>
              <p><Snippet text={hit.snippet} /></p>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
