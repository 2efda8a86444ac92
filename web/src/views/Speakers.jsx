// Voice profiles: enrol one from recordings (or from a transcript's speaker, in the transcript view), rename,
// delete. Transcripts then name the speakers they recognise, with the similarity.
import { useEffect, useState } from "preact/hooks";
import { api, can } from "../api.js";
import { Empty, Notice, PageHeader, useConfirm, useLoad } from "../components.jsx";
import { clock, when } from "../format.js";

export function Speakers() {
  const [data, error, reload] = useLoad(() => api("/v1/speakers"), []);
  const [message, setMessage] = useState(null);
  const [failure, setFailure] = useState(null);
  const [confirm, dialog] = useConfirm();
  const pending = (data?.speakers || []).some((s) => s.status === "pending");

  // a profile is computed by the diarization workers within seconds; refresh until none is pending
  useEffect(() => {
    if (!pending) return undefined;
    const timer = setTimeout(reload, 2000);
    return () => clearTimeout(timer);
  }, [data]);

  const enroll = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    setFailure(null);
    try {
      const profile = await api("/v1/speakers", { method: "POST", form: new FormData(form) });
      setMessage(`Enrolling ${profile.name}…`);
      form.reset();
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  const rename = async (sp) => {
    const name = prompt(`New name for ${sp.name}`, sp.name);
    if (!name) return;
    try {
      await api(`/v1/speakers/${sp.id}`, { method: "PATCH", json: { name } });
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  const remove = async (sp) => {
    if (!(await confirm(`Delete the voice profile of ${sp.name} and its recordings?`, "Delete"))) return;
    try {
      await api(`/v1/speakers/${sp.id}`, { method: "DELETE" });
      reload();
    } catch (err) {
      setFailure(err);
    }
  };

  return (
    <section aria-labelledby="page-title">
      <PageHeader title="Speakers" />
      <p class="muted">Enrolled voices are recognised in new transcripts: each speaker is compared with these profiles
        and named when the similarity reaches the job's threshold (0.7 by default). A transcript's speaker can be
        enrolled from its transcript (“Save voice”).</p>
      {can("speakers:write") && (
        <form class="card enroll" onSubmit={enroll} aria-labelledby="enroll-title">
          <h2 id="enroll-title">Enrol a voice from recordings</h2>
          <div class="field">
            <label for="sp-name">Name</label>
            <input id="sp-name" name="name" required maxLength={200} />
          </div>
          <div class="field">
            <label for="sp-files">Recordings of this person alone</label>
            <input id="sp-files" name="file" type="file" multiple accept="audio/*,video/*" required />
          </div>
          <button type="submit" class="primary">Enrol</button>
        </form>
      )}
      <Notice error={error || failure} />
      {message && <p class="notice info" role="status">{message}</p>}
      {data && data.speakers.length === 0 && <Empty>No voice profiles yet.</Empty>}
      {data && data.speakers.length > 0 && (
        <table class="table">
          <caption class="visually-hidden">Voice profiles</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Voiced</th><th scope="col">Samples</th><th scope="col">Created</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            {data.speakers.map((sp) => (
              <tr key={sp.id} data-profile-id={sp.id}>
                <td>{sp.name}</td>
                <td><span class={`badge profile-${sp.status}`}>{sp.status}</span>{sp.error && <span class="small"> {sp.error}</span>}</td>
                <td>{sp.voiced_seconds != null ? clock(sp.voiced_seconds) : "–"}</td>
                <td>{sp.samples}</td>
                <td>{when(sp.created_at)}</td>
                <td class="actions">
                  {can("speakers:write") && <button type="button" class="link" onClick={() => rename(sp)} aria-label={`Rename ${sp.name}`}>Rename</button>}
                  {can("speakers:write") && <button type="button" class="link danger" onClick={() => remove(sp)} aria-label={`Delete ${sp.name}`}>Delete</button>}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {dialog}
    </section>
  );
}
