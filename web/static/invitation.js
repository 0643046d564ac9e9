// The invitation link: language, then the device check, then the date of birth.
import { switchLanguage } from "./i18n.js";
import { checkDevices } from "./devices.js";

const steps = {
  language: document.getElementById("step-language"),
  devices: document.getElementById("step-devices"),
  identity: document.getElementById("step-identity"),
};
const proceed = document.getElementById("devices-continue");
let devices = null;

function show(name) {
  for (const [key, section] of Object.entries(steps)) section.hidden = key !== name;
  steps[name].querySelector("h2").focus({ preventScroll: false });
}

async function runCheck() {
  proceed.disabled = true;
  devices?.stop();
  devices = null;
  try {
    devices = await checkDevices(document.getElementById("device-check"));
    proceed.disabled = false;
  } catch {
    // The help is on screen; "Try again" runs the check again.
  }
}

for (const button of steps.language.querySelectorAll("button[data-language]")) {
  button.addEventListener("click", async () => {
    await switchLanguage(button.dataset.language);
    show("devices");
    runCheck();
  });
}
document.getElementById("devices-retry").addEventListener("click", runCheck);
proceed.addEventListener("click", () => {
  devices?.stop();  // the camera is opened again for the call
  show("identity");
  document.getElementById("date_of_birth").focus();
});
for (const section of Object.values(steps)) section.querySelector("h2").tabIndex = -1;
