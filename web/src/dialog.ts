// Modal dialogs: confirmation of a change (with an optional reason) and the
// token prompt shown when the server answers 401.

import { setToken } from "./api";
import { type Child, h } from "./dom";

interface ModalParts {
  dialog: HTMLDialogElement;
  close(): void;
}

function modal(testid: string, title: string, body: Child, footer: Child, onCancel: () => void): ModalParts {
  const dialog = h(
    "dialog",
    { class: "modal", testid },
    h("form", { class: "modal-form", attrs: { method: "dialog" } }, h("h2", null, title), h("div", { class: "modal-body" }, body), h("footer", { class: "modal-foot" }, footer)),
  );
  dialog.addEventListener("cancel", (ev) => {
    ev.preventDefault();
    onCancel();
  });
  document.body.appendChild(dialog);
  dialog.showModal();
  return {
    dialog,
    close: () => {
      dialog.close();
      dialog.remove();
    },
  };
}

export interface ConfirmOptions {
  title: string;
  /** What will change, stated exactly. */
  message: Child;
  confirmText: string;
  danger?: boolean;
  /** Asks for a reason (recorded with the change). */
  reason?: { label: string; placeholder?: string };
  /** Extra controls above the message (e.g. an alias picker). */
  extra?: Child;
}

export interface ConfirmResult {
  ok: boolean;
  reason: string;
}

export function confirmDialog(opts: ConfirmOptions): Promise<ConfirmResult> {
  return new Promise((resolve) => {
    const reason = opts.reason
      ? h("input", { type: "text", class: "input", testid: "confirm-reason", placeholder: opts.reason.placeholder ?? "" })
      : null;
    let parts: ModalParts | null = null;
    const finish = (ok: boolean) => {
      parts?.close();
      resolve({ ok, reason: reason ? reason.value.trim() : "" });
    };
    const okButton = h(
      "button",
      { type: "button", class: `btn ${opts.danger ? "btn-danger" : "btn-primary"}`, testid: "confirm-ok", on: { click: () => finish(true) } },
      opts.confirmText,
    );
    const body = [
      opts.extra ?? null,
      h("div", { class: "confirm-message", testid: "confirm-message" }, opts.message),
      reason ? h("label", { class: "field" }, h("span", null, opts.reason?.label ?? "Reason"), reason) : null,
    ];
    const footer = [
      h("button", { type: "button", class: "btn btn-ghost", testid: "confirm-cancel", on: { click: () => finish(false) } }, "Cancel"),
      okButton,
    ];
    parts = modal("confirm-dialog", opts.title, body, footer, () => finish(false));
    okButton.focus();
  });
}

let pendingPrompt: Promise<boolean> | null = null;

/** Asks for an API token; resolves true when one was saved. Concurrent 401s share one prompt. */
export function promptToken(reason: string): Promise<boolean> {
  if (pendingPrompt) return pendingPrompt;
  pendingPrompt = new Promise<boolean>((resolve) => {
    const input = h("input", { type: "password", class: "input", testid: "token-input", placeholder: "token secret", attrs: { autocomplete: "current-password" } });
    let parts: ModalParts | null = null;
    const finish = (ok: boolean) => {
      const value = input.value.trim();
      if (ok && !value) {
        input.focus();
        return;
      }
      if (ok) setToken(value);
      parts?.close();
      pendingPrompt = null;
      resolve(ok);
    };
    input.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        finish(true);
      }
    });
    const body = [
      h("p", null, "This server requires a token. It is kept in this browser's local storage and sent as ", h("code", null, "Authorization: Bearer …"), "."),
      reason ? h("p", { class: "muted small", testid: "token-reason" }, reason) : null,
      h("label", { class: "field" }, h("span", null, "Token"), input),
    ];
    const footer = [
      h("button", { type: "button", class: "btn btn-ghost", testid: "token-cancel", on: { click: () => finish(false) } }, "Cancel"),
      h("button", { type: "button", class: "btn btn-primary", testid: "token-save", on: { click: () => finish(true) } }, "Sign in"),
    ];
    parts = modal("token-dialog", "Sign in", body, footer, () => finish(false));
    input.focus();
  });
  return pendingPrompt;
}
