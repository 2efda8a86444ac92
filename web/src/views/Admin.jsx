// Administration: users (org admins and the platform admin) and organizations (the platform admin).
import { useState } from "preact/hooks";
import { api, can, session } from "../api.js";
import { Empty, Notice, PageHeader, useConfirm, useLoad } from "../components.jsx";
import { when } from "../format.js";

const ROLES = ["user", "org_admin", "admin"];

function Users() {
  const [data, error, reload] = useLoad(() => api("/v1/users"), []);
  const [orgs] = useLoad(() => api("/v1/organizations"), []);
  const [failure, setFailure] = useState(null);
  const [confirm, dialog] = useConfirm();
  const me = session().me;
  const create = async (e) => {
    e.preventDefault();
    const target = e.currentTarget;
    const form = new FormData(target);
    setFailure(null);
    try {
      await api("/v1/users", { method: "POST", json: {
        email: form.get("email"), password: form.get("password"), role: form.get("role"),
        org_id: form.get("org_id") || undefined,
      } });
      target.reset();
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  const remove = async (u) => {
    if (!(await confirm(`Delete the account ${u.email}?`, "Delete"))) return;
    try {
      await api(`/v1/users/${u.id}`, { method: "DELETE" });
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  return (
    <section aria-labelledby="users-title">
      <h2 id="users-title">Users</h2>
      <form class="card inline-form" onSubmit={create}>
        <div class="field"><label for="u-email">Email</label><input id="u-email" name="email" type="email" required autocomplete="off" /></div>
        <div class="field"><label for="u-password">Password</label>
          <input id="u-password" name="password" type="password" minLength={10} required autocomplete="new-password" aria-describedby="u-password-hint" />
          <small id="u-password-hint" class="hint">At least 10 characters.</small></div>
        <div class="field"><label for="u-role">Role</label>
          <select id="u-role" name="role">{ROLES.filter((r) => r !== "admin" || me?.role === "admin").map((r) => <option key={r}>{r}</option>)}</select></div>
        {me?.role === "admin" && (
          <div class="field"><label for="u-org">Organization</label>
            <select id="u-org" name="org_id">{(orgs?.organizations || []).map((o) => <option key={o.id} value={o.id} selected={o.id === me.org_id}>{o.name}</option>)}</select></div>
        )}
        <button type="submit" class="primary">Add user</button>
      </form>
      <Notice error={error || failure} />
      {data && data.users.length === 0 && <Empty>No users.</Empty>}
      {data && data.users.length > 0 && (
        <table class="table">
          <caption class="visually-hidden">Users</caption>
          <thead><tr><th scope="col">Email</th><th scope="col">Role</th><th scope="col">Organization</th><th scope="col">Created</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
          <tbody>
            {data.users.map((u) => (
              <tr key={u.id}>
                <td>{u.email}</td><td>{u.role}</td><td>{u.org_id}</td><td>{when(u.created_at)}</td>
                <td class="actions">{u.id !== me?.user_id && (
                  <button type="button" class="link danger" onClick={() => remove(u)} aria-label={`Delete ${u.email}`}>Delete</button>
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

function Organizations() {
  const [data, error, reload] = useLoad(() => api("/v1/organizations"), []);
  const [failure, setFailure] = useState(null);
  const create = async (e) => {
    e.preventDefault();
    const target = e.currentTarget;
    const form = new FormData(target);
    const days = String(form.get("retention_days") || "").trim();
    setFailure(null);
    try {
      await api("/v1/organizations", { method: "POST", json: { name: form.get("name"), retention_days: days ? Number(days) : null } });
      target.reset();
      reload();
    } catch (err) {
      setFailure(err);
    }
  };
  return (
    <section aria-labelledby="orgs-title">
      <h2 id="orgs-title">Organizations</h2>
      <form class="card inline-form" onSubmit={create}>
        <div class="field"><label for="o-name">Name</label><input id="o-name" name="name" required maxLength={200} /></div>
        <div class="field"><label for="o-ret">Retention (days)</label><input id="o-ret" name="retention_days" type="number" min="1" placeholder="forever" /></div>
        <button type="submit" class="primary">Add organization</button>
      </form>
      <Notice error={error || failure} />
      {data && data.organizations.length === 0 && <Empty>No organizations.</Empty>}
      {data && data.organizations.length > 0 && (
        <table class="table">
          <caption class="visually-hidden">Organizations</caption>
          <thead><tr><th scope="col">Name</th><th scope="col">Id</th><th scope="col">Retention</th><th scope="col">Created</th></tr></thead>
          <tbody>
            {data.organizations.map((o) => (
              <tr key={o.id}><td>{o.name}</td><td><code>{o.id}</code></td><td>{o.retention_days ? `${o.retention_days} days` : "forever"}</td><td>{when(o.created_at)}</td></tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

export function Admin({ tab }) {
  const showOrgs = can("*");
  const current = tab === "organizations" && showOrgs ? "organizations" : "users";
  return (
    <section aria-labelledby="page-title">
      <PageHeader title={current === "organizations" ? "Organizations" : "Users"} />
      {current === "users" ? <Users /> : <Organizations />}
    </section>
  );
}
