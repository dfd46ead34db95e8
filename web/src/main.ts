// The dashboard's shell: left navigation, the signed-in user, the router.

import { api, ApiError, getToken, needsToken, onUnauthorized, setToken, type Whoami } from "./api";
import { promptToken } from "./dialog";
import { errorText, h, note, replace } from "./dom";
import { compareRunsPage } from "./compare";
import { deploymentsPage } from "./deployments";
import { experimentsPage } from "./experiments";
import { modelPage } from "./model";
import { modelsPage } from "./models";
import { monitoringIndexPage, monitoringPage } from "./monitoring";
import { retrainingPage } from "./retraining";
import { Router, type Location } from "./router";
import { runPage } from "./run";

const NAV: Array<{ section: string; label: string; also: string[]; icon: string }> = [
  { section: "experiments", label: "Experiments", also: ["runs", "compare"], icon: "M3 3h7v7H3zM14 3h7v7h-7zM3 14h7v7H3zM14 14h7v7h-7z" },
  { section: "models", label: "Models", also: [], icon: "M12 2 3 7l9 5 9-5-9-5zM3 12l9 5 9-5M3 17l9 5 9-5" },
  { section: "monitoring", label: "Monitoring", also: [], icon: "M3 12h4l3-8 4 16 3-8h4" },
  { section: "deployments", label: "Deployments", also: [], icon: "M4 4h16v6H4zM4 14h16v6H4zM8 7h.01M8 17h.01" },
  { section: "retraining", label: "Retraining", also: [], icon: "M20 11a8 8 0 1 0-2.3 5.7M20 4v7h-7" },
];

function icon(path: string): SVGSVGElement {
  const ns = "http://www.w3.org/2000/svg";
  const s = document.createElementNS(ns, "svg");
  s.setAttribute("viewBox", "0 0 24 24");
  s.setAttribute("class", "nav-icon");
  const p = document.createElementNS(ns, "path");
  p.setAttribute("d", path);
  s.appendChild(p);
  return s;
}

let user: Whoami = { auth: false, name: null, role: null };

function main(): void {
  const app = document.getElementById("app");
  if (!app) return;

  const links = NAV.map((n) =>
    h("a", { href: `#/${n.section}`, class: "nav-link", testid: `nav-${n.section}`, data: { section: n.section } }, icon(n.icon), h("span", null, n.label)),
  );
  const userBox = h("div", { class: "nav-user", testid: "nav-user" });
  const versionBox = h("div", { class: "nav-version muted small" });
  const content = h("main", { class: "content", testid: "content" });
  app.replaceChildren(
    h(
      "div",
      { class: "shell" },
      h(
        "aside",
        { class: "sidebar" },
        h("a", { href: "#/experiments", class: "brand" }, h("span", { class: "brand-mark" }, "k"), h("span", null, "keel")),
        h("nav", { class: "nav" }, links),
        h("div", { class: "sidebar-foot" }, userBox, versionBox),
      ),
      content,
    ),
  );

  const highlight = (loc: Location) => {
    for (const [i, n] of NAV.entries()) {
      links[i]?.classList.toggle("active", n.section === loc.section || n.also.includes(loc.section));
    }
  };

  const router = new Router(
    content,
    [
      { section: "experiments", page: experimentsPage },
      { section: "runs", page: runPage, minParams: 1 },
      { section: "compare", page: compareRunsPage },
      { section: "models", page: modelsPage },
      { section: "models", page: modelPage, minParams: 1 },
      { section: "monitoring", page: monitoringIndexPage },
      { section: "monitoring", page: monitoringPage, minParams: 1 },
      { section: "deployments", page: deploymentsPage },
      { section: "retraining", page: retrainingPage },
    ],
    "#/experiments",
    () => user,
    highlight,
    (root, e) => {
      const status = e instanceof ApiError ? ` (${e.status} ${e.code})` : "";
      replace(root, note(`Could not load this page${status}: ${errorText(e)}`, "error", "page-error"));
    },
  );

  const renderUser = () => {
    const signIn = h("button", { type: "button", class: "btn btn-ghost btn-small", testid: "sign-in", on: { click: () => void signInNow() } }, "Set token");
    const signOut = h(
      "button",
      {
        type: "button",
        class: "btn btn-ghost btn-small",
        testid: "sign-out",
        on: {
          click: () => {
            setToken(null);
            window.location.reload();
          },
        },
      },
      "Sign out",
    );
    replace(
      userBox,
      user.auth
        ? user.role
          ? [h("div", { class: "user-name", testid: "user-name" }, user.name || "signed in"), h("div", { class: "muted small", testid: "user-role" }, user.role === "write" ? "read & write" : "read only"), signOut]
          : [h("div", { class: "muted small" }, "not signed in"), signIn]
        : [h("div", { class: "muted small" }, "open server (no auth)"), getToken() ? signOut : signIn],
    );
  };

  const loadUser = async () => {
    try {
      user = await api.whoami();
      // Auth is on and no accepted token yet: ask before the first call.
      for (let attempt = 0; needsToken(user) && attempt < 3; attempt++) {
        const why = getToken() ? "The stored token was not accepted." : "";
        if (!(await promptToken(why))) break;
        user = await api.whoami();
      }
    } catch {
      user = { auth: true, name: null, role: null };
    }
    renderUser();
  };

  // A call answered 401: ask for a token, retry, and show who signed in.
  onUnauthorized(async (reason) => {
    const ok = await promptToken(reason);
    if (ok) void api.whoami().then((u) => ((user = u), renderUser()), () => undefined);
    return ok;
  });

  const signInNow = async () => {
    if (await promptToken("")) {
      await loadUser();
      router.reload();
    }
  };

  void api.version().then(
    (v) => (versionBox.textContent = v.trim()),
    () => undefined,
  );
  void loadUser().then(() => router.start());
}

if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main);
else main();
