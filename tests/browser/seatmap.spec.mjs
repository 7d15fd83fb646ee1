// Drives the /demo seat map in headless Chromium. Two pages (on two server instances when
// SEATSTORM_URL_B differs from SEATSTORM_URL_A): one buys a seat, the other must show it sold,
// live, without reloading. Run through scripts/browser-test.sh, which starts the servers.

import assert from "node:assert/strict";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import { after, before, test } from "node:test";
import { chromium } from "playwright-core";

const URL_A = process.env.SEATSTORM_URL_A ?? "http://127.0.0.1:8000";
const URL_B = process.env.SEATSTORM_URL_B ?? URL_A;
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOT = process.env.SCREENSHOT ?? "target/browser/seatmap.png";
// Generous: a debug build on two cores serves a 16,000-seat map in a few seconds.
const TIMEOUT = 30_000;
// The page reports its state in data- attributes, also on elements that are empty (so "hidden").
const ATTACHED = { state: "attached" };

let browser;
const pageErrors = [];

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    // Without the networking flags Chromium's own background connections are refused here and
    // slow everything down; the sandbox needs privileges a CI container does not have.
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
});

after(async () => {
  await browser?.close();
});

async function openDemo(baseUrl, eventTitle) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on("pageerror", (error) => pageErrors.push(`${baseUrl}: ${error.message}`));
  await page.goto(`${baseUrl}/demo`);
  await page.waitForSelector('#session[data-state="signed-in"]', ATTACHED);
  await page.waitForSelector('body[data-ready="true"]', ATTACHED);
  const eventId = await page.$eval(
    "#event",
    (select, title) => [...select.options].find((option) => option.text.startsWith(title))?.value,
    eventTitle,
  );
  assert.ok(eventId, `the event list offers ${eventTitle}`);
  if ((await page.inputValue("#event")) !== eventId) {
    await page.selectOption("#event", eventId);
    await page.waitForSelector('body[data-ready="true"]', ATTACHED);
  }
  // The live feed's first message (a snapshot) has arrived: from here on changes are pushed.
  await page.waitForSelector('#map:not([data-seq=""])', ATTACHED);
  return page;
}

async function findSeat(page, section, row, number) {
  await page.fill('#find input[name="section"]', section);
  await page.fill('#find input[name="row"]', row);
  await page.fill('#find input[name="number"]', String(number));
  await page.click('#find button[type="submit"]');
  const info = page.locator("#seat-info");
  await page.waitForSelector('#seat-info:not([data-seat-id=""])', ATTACHED);
  return {
    id: await info.getAttribute("data-seat-id"),
    status: await info.getAttribute("data-status"),
    x: Number(await info.getAttribute("data-x")),
    y: Number(await info.getAttribute("data-y")),
  };
}

async function expectNoError(page) {
  const code = await page.getAttribute("#message", "data-code");
  const text = await page.textContent("#message");
  assert.equal(code, "", `the page shows an error: ${text}`);
}

test("a seat bought on one page turns sold on the other, live", async () => {
  const buyer = await openDemo(URL_A, "Harbor Hawks");
  const watcher = await openDemo(URL_B, "Harbor Hawks");

  // A seat of the 16,000-seat arena picked at random, so reruns on one database do not collide.
  const number = 1 + Math.floor(Math.random() * 30);
  const row = String.fromCharCode(65 + Math.floor(Math.random() * 20));
  const seen = await findSeat(watcher, "104", row, number);
  const seat = await findSeat(buyer, "104", row, number);
  assert.equal(seen.id, seat.id);
  assert.equal(seat.status, "AVAILABLE", `104 ${row}${number} is free at the start`);

  // Select it on the canvas itself, where the page says the seat is drawn.
  await buyer.locator("#map").click({ position: { x: seat.x, y: seat.y } });
  await buyer.waitForSelector(`#selection li[data-seat-id="${seat.id}"]`, ATTACHED);

  await buyer.click("#hold");
  await buyer.waitForSelector('#hold-info:not([data-hold-id=""])', ATTACHED);
  await expectNoError(buyer);
  await watcher.waitForSelector(`#seat-info[data-seat-id="${seat.id}"][data-status="HELD"]`, ATTACHED);

  // Both pages are the demo customer, who may have one live hold per event: the API refuses a
  // second one and the page shows its code.
  const other = await findSeat(watcher, "104", row, (number % 30) + 1);
  assert.equal(other.status, "AVAILABLE");
  await watcher.click("#toggle-seat");
  await watcher.click("#hold");
  await watcher.waitForSelector('#message[data-code="CONFLICT"]', ATTACHED);
  await findSeat(watcher, "104", row, number);

  await buyer.click("#buy");
  await buyer.waitForSelector("#message[data-order-id]", ATTACHED);
  await expectNoError(buyer);
  await watcher.waitForSelector(`#seat-info[data-seat-id="${seat.id}"][data-status="SOLD"]`, ATTACHED);
  assert.ok(Number(await watcher.getAttribute("#map", "data-sold")) >= 1);

  await mkdir(dirname(SCREENSHOT), { recursive: true });
  await watcher.screenshot({ path: SCREENSHOT, fullPage: true });
  assert.deepEqual(pageErrors, []);
});

test("the waiting room admits the shopper and the queue pass lets them hold", async () => {
  const page = await openDemo(URL_A, "Nova Lights");
  await page.waitForSelector('#queue[data-status="ADMITTED"]', ATTACHED);

  const number = 1 + Math.floor(Math.random() * 40);
  const seat = await findSeat(page, "201", "A", number);
  assert.equal(seat.status, "AVAILABLE", `201 A${number} is free at the start`);
  await page.click("#toggle-seat");
  await page.click("#hold");
  await page.waitForSelector('#hold-info:not([data-hold-id=""])', ATTACHED);
  await expectNoError(page);
  await page.waitForSelector(`#seat-info[data-seat-id="${seat.id}"][data-status="HELD"]`, ATTACHED);

  await page.click("#release");
  await page.waitForSelector('#hold-info[data-hold-id=""]', ATTACHED);
  await expectNoError(page);
  await page.waitForSelector(`#seat-info[data-seat-id="${seat.id}"][data-status="AVAILABLE"]`, ATTACHED);
  assert.deepEqual(pageErrors, []);
});
