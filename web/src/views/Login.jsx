import { useState } from "preact/hooks";
import { signIn } from "../api.js";

export function Login() {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = new FormData(e.currentTarget);
    setBusy(true);
    setError(null);
    try {
      await signIn(String(form.get("email")).trim(), String(form.get("password")));
    } catch (err) {
      setError(err.status === 401 ? "Wrong email or password." : err.message);
      setBusy(false);
    }
  };
  return (
    <main class="login">
      <form class="card" onSubmit={submit} aria-labelledby="login-title">
        <h1 id="login-title"><img src="/static/app/icon.svg" alt="" width="32" height="32" /> streamscribe</h1>
        <p class="muted">Sign in to transcribe, search and edit your recordings.</p>
        <div class="field">
          <label for="email">Email</label>
          <input id="email" name="email" type="email" autocomplete="username" required autofocus />
        </div>
        <div class="field">
          <label for="password">Password</label>
          <input id="password" name="password" type="password" autocomplete="current-password" required />
        </div>
        {error && <p class="notice error" role="alert">{error}</p>}
        <button type="submit" class="primary" disabled={busy}>{busy ? "Signing in…" : "Sign in"}</button>
        <p class="muted small">After <code>streamscribe up</code>, the administrator's email and password are in
          <code> &lt;home&gt;/secrets/credentials.json</code>.</p>
      </form>
    </main>
  );
}
