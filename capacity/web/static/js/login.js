import { api, ApiError } from "./common.js";

const form = document.getElementById("login-form");
const error = document.getElementById("login-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  try {
    const result = await api("/login", {
      method: "POST",
      body: { username: form.username.value.trim(), password: form.password.value },
    });
    window.location.assign(result.page);
  } catch (e) {
    error.textContent = e instanceof ApiError && e.status === 429
      ? "Too many failed attempts. Wait a few minutes and try again."
      : "Wrong username or password.";
    error.hidden = false;
    form.password.focus();
  }
});
document.getElementById("live").hidden = true;
