// Poll the controller's read-only unit summary every second and redraw the table.
"use strict";

const body = document.querySelector("#units tbody");
const busbar = document.getElementById("busbar");
const stale = document.getElementById("stale");

function cell(text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function number(value, digits) {
  return value === null || value === undefined ? "–" : Number(value).toFixed(digits);
}

function render(data) {
  document.getElementById("rack-name").textContent = data.rack ? data.rack.name : "";
  if (data.rack) {
    busbar.textContent = `busbar ${number(data.rack.powerWatts, 2)} W of ` +
      `${number(data.rack.psuRatedWatts, 0)} W rated · ${data.rack.unitsRunning}/` +
      `${data.units.length} running`;
  }
  const rows = data.units.map((unit) => {
    const tr = document.createElement("tr");
    tr.appendChild(cell(unit.name));
    tr.appendChild(cell(String(unit.slot), "num"));
    const phase = cell("");
    const badge = document.createElement("span");
    badge.className = `phase phase-${unit.phase}`;
    badge.textContent = unit.phase;
    phase.appendChild(badge);
    tr.appendChild(phase);
    tr.appendChild(cell(number(unit.powerWatts, 2), "num"));
    tr.appendChild(cell(number(unit.temperatureCelsius, 1), "num"));
    tr.appendChild(cell(unit.reason || ""));
    return tr;
  });
  body.replaceChildren(...rows);
}

async function refresh() {
  try {
    const response = await fetch("/ui/v1/units", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    stale.hidden = true;
  } catch (err) {
    stale.hidden = false;
  } finally {
    setTimeout(refresh, 1000);
  }
}

refresh();
