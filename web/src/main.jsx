// The streamscribe web app: sign-in, navigation by role, and the views.
import { render } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { can, onSession, resume, session, signOut } from "./api.js";
import { useRoute } from "./router.js";
import { Login } from "./views/Login.jsx";
import { Jobs } from "./views/Jobs.jsx";
import { Transcript } from "./views/Transcript.jsx";
import { Compare } from "./views/Compare.jsx";
import { Search } from "./views/Search.jsx";
import { Live } from "./views/Live.jsx";
import { Speakers } from "./views/Speakers.jsx";
import { Settings } from "./views/Settings.jsx";
import { Admin } from "./views/Admin.jsx";
import { Analytics } from "./views/Analytics.jsx";

function navItems() {
  const items = [
    { path: "/jobs", label: "Jobs", show: can("jobs:read") },
    { path: "/search", label: "Search", show: can("jobs:read") },
    { path: "/analytics", label: "Analytics", show: can("analytics:read") },
    { path: "/live", label: "Live", show: can("live") },
    { path: "/speakers", label: "Speakers", show: can("speakers:read") },
    {
      path: "/settings",
      label: "Settings",
      show: can("keys:manage") || can("webhooks:manage") || can("usage:read") || can("org:manage"),
    },
    { path: "/admin/users", label: "Users", show: can("users:manage") },
    { path: "/admin/organizations", label: "Organizations", show: can("*") },
  ];
  return items.filter((i) => i.show);
}

function View({ route }) {
  const [first, second, third] = route.parts;
  if (first === "jobs" && second && third === "compare") return <Compare jobId={second} query={route.query} />;
  if (first === "jobs" && second) return <Transcript jobId={second} query={route.query} />;
  if (first === "search") return <Search query={route.query} />;
  if (first === "analytics") return <Analytics query={route.query} />;
  if (first === "live") return <Live />;
  if (first === "speakers") return <Speakers />;
  if (first === "settings") return <Settings tab={second} />;
  if (first === "admin") return <Admin tab={second} />;
  return <Jobs query={route.query} />;
}

function Shell({ state }) {
  const route = useRoute();
  const main = useRef(null);
  const [menuOpen, setMenuOpen] = useState(false);
  useEffect(() => {
    // a new view: move focus to its heading, so keyboard and screen-reader users start there
    setMenuOpen(false);
    const heading = document.getElementById("page-title");
    if (heading) heading.focus({ preventScroll: true });
  }, [route.parts[0], route.parts[1]]);
  const items = navItems();
  const current = `/${route.parts[0] || "jobs"}${route.parts[0] === "admin" ? `/${route.parts[1] || ""}` : ""}`;
  return (
    <div class="shell">
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); main.current?.focus(); }}>Skip to content</a>
      <header class="topbar">
        <a class="brand" href="#/jobs"><img src="/static/app/icon.svg" alt="" width="24" height="24" /> streamscribe</a>
        <button type="button" class="menu-toggle" aria-expanded={menuOpen} aria-controls="nav"
          onClick={() => setMenuOpen(!menuOpen)}>Menu</button>
        <nav id="nav" class={menuOpen ? "open" : ""} aria-label="Main">
          <ul>
            {items.map((i) => (
              <li key={i.path}>
                <a href={`#${i.path}`} aria-current={current.startsWith(i.path) || (i.path === "/jobs" && current === "/jobs") ? "page" : undefined}>
                  {i.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="who">
          <span title={`organization ${state.me?.org_id}`}>{state.email || state.me?.user_id} · {state.me?.role}</span>
          <button type="button" onClick={() => signOut()}>Sign out</button>
        </div>
      </header>
      <main id="main" ref={main} tabIndex={-1}>
        <View route={route} />
      </main>
    </div>
  );
}

function App() {
  const [state, setState] = useState({ ...session(), loading: true });
  useEffect(() => {
    const off = onSession((s) => setState({ ...s, loading: false }));
    resume();
    return off;
  }, []);
  if (state.loading) return <p class="boot">Loading streamscribe…</p>;
  if (!state.signedIn || !state.me) return <Login />;
  return <Shell state={state} />;
}

render(<App />, document.getElementById("app"));
