// The one-time link carries its token after "#", which the browser never sends to a server: read it here,
// and take it out of the address bar and history at once.
import { api, ApiError } from "./common.js";

const token = new URLSearchParams(window.location.hash.slice(1)).get("token") || "";
history.replaceState(null, "", window.location.pathname);
const form = document.getElementById("set-password-form");
const error = document.getElementById("password-error");

function show(message) {
  error.textContent = message;
  error.hidden = false;
  form.password.setAttribute("aria-invalid", "true");
  form.password.focus();
}

if (!token) show("This page needs the link you were given. Ask an admin for a new one.");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  form.password.removeAttribute("aria-invalid");
  if (form.password.value !== form.confirm.value) return show("The two passwords are not the same.");
  try {
    await api("/api/auth/set-password", { method: "POST", body: { token, password: form.password.value } });
    form.hidden = true;
    document.getElementById("done").hidden = false;
  } catch (e) {
    if (e instanceof ApiError && e.status === 410) show("This link has been used or has expired. Ask an admin for a new one.");
    else if (e instanceof ApiError && e.status === 422) show(e.message);
    else show("The password could not be set just now. Try again in a moment.");
  }
});
document.getElementById("live").hidden = true;
