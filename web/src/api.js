// The session and every call to the gateway's REST API.
//
// Tokens: the access token (JWT, minutes) lives only in this module's memory; the refresh token (rotated on
// every use) is kept in sessionStorage, so a reload of the tab stays signed in and closing the tab ends the
// session. Nothing is put in localStorage, and no token ever goes into a URL: REST calls send
// `Authorization: Bearer`, WebSockets offer the token as a subprotocol (see liveSocket in views/Live.jsx).
// The access token is renewed shortly before it expires, and once more on a 401, with one renewal in flight
// at a time (a refresh token is single-use).

const REFRESH_KEY = "streamscribe.refresh";
const EMAIL_KEY = "streamscribe.email";

export class ApiError extends Error {
  constructor(status, title, detail, body) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.body = body;
  }
}

let access = null;
let renewTimer = null;
let renewing = null;
const listeners = new Set();
let me = null;

function emit() {
  for (const fn of listeners) fn(session());
}

export function session() {
  return { signedIn: access !== null, me, email: sessionStorage.getItem(EMAIL_KEY) };
}

export function onSession(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

export function accessToken() {
  return access;
}

function keep(tokens) {
  access = tokens.access_token;
  sessionStorage.setItem(REFRESH_KEY, tokens.refresh_token);
  clearTimeout(renewTimer);
  // renew at 80% of the lifetime, so requests never meet an expired token
  const ms = Math.max(5, Number(tokens.expires_in) * 0.8) * 1000;
  renewTimer = setTimeout(() => renew().catch(() => {}), ms);
}

function forget() {
  access = null;
  me = null;
  clearTimeout(renewTimer);
  sessionStorage.removeItem(REFRESH_KEY);
}

async function problem(response) {
  const body = await response.json().catch(() => null);
  return new ApiError(response.status, body?.title || response.statusText, body?.detail || body?.error?.message, body);
}

async function post(path, json, auth) {
  const headers = { "Content-Type": "application/json" };
  if (auth && access) headers.Authorization = `Bearer ${access}`;
  return fetch(path, { method: "POST", headers, body: JSON.stringify(json), credentials: "omit" });
}

export async function signIn(email, password) {
  const response = await post("/v1/auth/token", { email, password }, false);
  if (!response.ok) throw await problem(response);
  keep(await response.json());
  sessionStorage.setItem(EMAIL_KEY, email);
  await loadMe();
}

async function loadMe() {
  me = await api("/v1/me");
  emit();
}

/** Exchange the refresh token for a new pair; signs out when it is no longer valid. */
export function renew() {
  if (renewing) return renewing;
  const refresh = sessionStorage.getItem(REFRESH_KEY);
  if (!refresh) return Promise.reject(new ApiError(401, "Unauthorized", "not signed in"));
  renewing = (async () => {
    try {
      const response = await post("/v1/auth/refresh", { refresh_token: refresh }, false);
      if (!response.ok) {
        const error = await problem(response);
        if (response.status === 401 || response.status === 400) {
          forget();
          emit();
        }
        throw error;
      }
      keep(await response.json());
    } finally {
      renewing = null;
    }
  })();
  return renewing;
}

/** On page load: resume the tab's session from its refresh token, if it has one. */
export async function resume() {
  if (!sessionStorage.getItem(REFRESH_KEY)) {
    emit();
    return;
  }
  try {
    await renew();
    await loadMe();
  } catch {
    forget();
    emit();
  }
}

export async function signOut() {
  const refresh = sessionStorage.getItem(REFRESH_KEY);
  try {
    if (refresh && access) await post("/v1/auth/logout", { refresh_token: refresh }, true);
  } finally {
    forget();
    sessionStorage.removeItem(EMAIL_KEY);
    emit();
  }
}

/**
 * Call the API. `json` sends a JSON body, `form` a FormData; `as` is "json" (default), "text", "blob" or
 * "response". Problems (RFC 9457) become ApiError with the server's detail.
 */
export async function api(path, { method = "GET", json, form, as = "json", signal, retried = false } = {}) {
  if (!access && !retried) await renew();
  const headers = { Authorization: `Bearer ${access}` };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form;
  }
  const response = await fetch(path, { method, headers, body, signal, credentials: "omit" });
  if (response.status === 401 && !retried && sessionStorage.getItem(REFRESH_KEY)) {
    await renew();
    return api(path, { method, json, form, as, signal, retried: true });
  }
  if (!response.ok) throw await problem(response);
  if (as === "response") return response;
  if (response.status === 204) return null;
  if (as === "text") return response.text();
  if (as === "blob") return response.blob();
  return response.json();
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Save a blob as a file through a temporary object URL (downloads need the Authorization header). */
export function saveBlob(blob, filename) {
  const url = URL.createObjectURL(blob);
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function can(scope) {
  const scopes = me?.scopes || [];
  return scopes.includes("*") || scopes.includes(scope);
}
