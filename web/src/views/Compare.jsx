// Two revisions of a transcript side by side as a word diff, with the word error rate between them.
import { api, qs } from "../api.js";
import { Notice, PageHeader, useLoad } from "../components.jsx";
import { percent } from "../format.js";
import { href } from "../router.js";

export function Compare({ jobId, query }) {
  const [result, error] = useLoad(() => api(`/v1/jobs/${jobId}/compare${qs({ a: query.a, b: query.b })}`), [jobId, query.a, query.b]);
  return (
    <section aria-labelledby="page-title">
      <PageHeader title={`Compare revisions ${query.a ?? ""} and ${query.b ?? ""}`}>
        <a class="button" href={href(`/jobs/${jobId}`, { rev: query.b })}>Back to the transcript</a>
      </PageHeader>
      <Notice error={error} />
      {result && (
        <section class="card">
          <p>
            Revision {result.a.revision} ({result.a.model}) → revision {result.b.revision} ({result.b.model}):{" "}
            <strong>{result.changed_words}</strong> words differ, word error rate between them{" "}
            <strong>{percent(result.wer_between)}</strong>.
          </p>
          <p class="legend small"><del>removed</del> <ins>added</ins></p>
          <p class="diff" data-testid="diff">
            {result.diff.map((op, i) => {
              if (op.op === "equal") return <span key={i}>{op.a} </span>;
              return (
                <span key={i} class="change">
                  {op.a && <del>{op.a}</del>}{op.a && op.b ? " " : ""}{op.b && <ins>{op.b}</ins>}{" "}
                </span>
              );
            })}
          </p>
        </section>
      )}
    </section>
  );
}
