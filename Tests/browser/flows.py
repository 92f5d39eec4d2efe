#!/usr/bin/env python3
"""Gatehouse's pages in a real browser: headless Chromium driven by Selenium.

Each flow is one function below; it uses a fresh address (a random local part) so flows are
independent of each other and of the order they run in. The flows reach a running node with the
stand-in webmail on (GATEHOUSE_WEB_DEMO=on), its mail delivered to the test SMTP sink, whose
directory (`message-*.json`, one file per accepted message) they read mailed codes from, and
`GATEHOUSE_WEB_PASSWORD_RESET_URL=/demo/reset-password`. The element ids they use are the page
contract every page keeps (Sources/GatehouseWeb/).

    python3 Tests/browser/flows.py --base http://127.0.0.1:PORT --mail-dir DIR \
        [--base2 http://localhost:PORT2] [--screenshots DIR] [--domain example.org] FLOW...
    python3 Tests/browser/flows.py --list

The passkey flows use Chromium's virtual authenticator (WebDriver's WebAuthn extension) and need
the pages on `http://localhost:PORT` (`--base`): the node's relying party ID is then `localhost`,
which no `127.0.0.1` origin matches. `passkey_second_node` also needs `--base2`, a second node
sharing the first one's Redis and keys. The flows' domain must allow passkeys (its policy's
`methods` include `passkey`).

Exits 0 when every named flow passed; otherwise 1, with what failed, where the browser was and
what the page said. Every wait is bounded (10 s for a page or an element, 10 s for a mail) and a
flow gets at most 85 s before it is stopped; the Swift suite (BrowserTests.swift) kills the whole
process after 90 s.

TOTP codes are computed here (RFC 6238: SHA-1, 6 digits, 30 s) from the key the enrolment page
shows. A step's code is spent once used (replay protection), so a flow that enrolled with the code
of step N signs in with the code of step N+1, which the node accepts (±1 step): nothing waits for
the wall clock.
"""

import argparse
import base64
import dataclasses
import glob
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse

#: The stand-in webmail's password for every address until the forgot-password flow changes it
#: (DemoWebmail.defaultPassword).
DEMO_PASSWORD = "demo-password"
#: Upper bound of every wait for a page, an element or a mail.
WAIT = 10
#: Upper bound of one flow; the Swift suite kills the process at 90 s.
FLOW_LIMIT = 85

FLOWS = {}


def flow(function):
    """Registers a flow under its function name."""
    FLOWS[function.__name__] = function
    return function


class FlowFailure(AssertionError):
    """A check of a flow failed; the message says what was expected."""


def check(condition, message):
    if not condition:
        raise FlowFailure(message)


# MARK: Codes


def totp(secret, step):
    """The 6-digit code of the base32 `secret` at time step `step` (RFC 6238, SHA-1)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", step), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF
    return "%06d" % (value % 1_000_000)


def current_step():
    """The TOTP step now (the node's clock is this machine's: Redis's TIME on loopback)."""
    return int(time.time()) // 30


def wrong_code(secret):
    """A 6-digit code that no nearby step of `secret` produces."""
    now = current_step()
    valid = {totp(secret, now + d) for d in range(-3, 4)}
    return next(c for c in ("000000", "123456", "654321", "111111", "999999") if c not in valid)


class Mailbox:
    """The SMTP sink's directory: one `message-NNNNN.json` per accepted message, written under a
    temporary name and renamed, so a listed file is complete."""

    def __init__(self, directory):
        self.directory = directory

    def names(self):
        return set(glob.glob(os.path.join(self.directory, "message-*.json")))

    def mark(self):
        """The messages so far; pass to `code` to wait for a newer one."""
        return self.names()

    def code(self, to, since, what):
        """The 6-digit code in the first message to `to` that arrived after `since`."""
        deadline = time.monotonic() + WAIT
        while True:
            for name in sorted(self.names() - since):
                with open(name, encoding="utf-8") as f:
                    message = json.load(f)
                if to.lower() in (r.lower() for r in message.get("to", [])):
                    found = re.search(r"(?<!\d)\d{6}(?!\d)", message.get("body", ""))
                    check(found, "the mail to %s (%s) has no 6-digit code: %r" % (to, what, message.get("body", "")[:500]))
                    return found.group(0)
            if time.monotonic() > deadline:
                raise FlowFailure("no mail to %s (%s) reached the SMTP sink within %d s" % (to, what, WAIT))
            time.sleep(0.1)


# MARK: The browser


class Run:
    """What the flows share: the node, the mail sink, the programs, a temporary directory."""

    def __init__(self, args, temp):
        self.base = args.base.rstrip("/")
        self.base2 = (args.base2 or "").rstrip("/") or None
        self.mail = Mailbox(args.mail_dir)
        self.screenshots = args.screenshots
        self.domain = args.domain
        self.temp = temp
        self.chromium = args.chromium
        self.chromedriver = args.chromedriver
        self.zbarimg = args.zbarimg
        self.browsers = []

    def browser(self, name="browser"):
        b = Browser(self, name)
        self.browsers.append(b)
        return b

    def user(self, name="user"):
        """A fresh address in the flows' domain and its recovery address."""
        local = "%s.%s" % (name, secrets.token_hex(3))
        return "%s@%s" % (local, self.domain), "%s@recovery.example" % local

    def close(self):
        while self.browsers:
            self.browsers.pop().quit()


def _die_with_parent():
    """chromedriver gets SIGKILL if this process dies without quitting it (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except Exception:
        pass


class Browser:
    """One headless Chromium with a fresh profile, and the few moves the flows make with it."""

    def __init__(self, run, name, width=1280, height=900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.run = run
        self.name = name
        #: The node `open` loads pages from (a flow may move the browser to another node).
        self.base = run.base
        profile = tempfile.mkdtemp(prefix="chromium-%s-" % name, dir=run.temp)
        options = webdriver.ChromeOptions()
        options.binary_location = run.chromium
        for argument in (
            "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--user-data-dir=" + profile,
            "--window-size=%d,%d" % (width, height), "--no-first-run", "--no-default-browser-check",
            "--disable-extensions", "--disable-background-networking", "--disable-sync", "--disable-component-update",
            "--password-store=basic", "--disable-features=PasswordLeakDetection,Translate,MediaRouter",
        ):
            options.add_argument(argument)
        options.add_experimental_option("prefs", {
            "credentials_enable_service": False,
            "profile.password_manager_enabled": False,
            "profile.password_manager_leak_detection": False,
        })
        # The driver's path is given, so Selenium Manager never looks for one on the network.
        service = Service(
            executable_path=run.chromedriver, log_output=os.path.join(run.temp, "chromedriver-%s.log" % name),
            popen_kw={"preexec_fn": _die_with_parent},
        )
        self.profile = profile
        self.emulated = None
        self.driver = webdriver.Chrome(service=service, options=options)
        # Every call to chromedriver is bounded too (Selenium's default is 120 s).
        self.driver.command_executor._client_config.timeout = 30
        self.driver.implicitly_wait(0)  # explicit, bounded waits only
        self.driver.set_page_load_timeout(WAIT)
        self.driver.set_script_timeout(WAIT)
        self.browser_pids = self._children(service.process.pid)

    @staticmethod
    def _children(pid):
        pids = []
        for task in glob.glob("/proc/%d/task/*/children" % pid):
            try:
                with open(task) as f:
                    pids += [int(p) for p in f.read().split()]
            except OSError:
                pass
        return pids

    def quit(self):
        try:
            self.driver.quit()
        except Exception as error:  # a driver that died already
            print("note: quitting %s: %s" % (self.name, error), file=sys.stderr)
        # Chromium outlives a chromedriver that did not stop it: kill it if it still runs (it is
        # ours when its command line names this browser's profile).
        for pid in self.browser_pids:
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    ours = self.profile.encode() in f.read()
                if ours:
                    os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    # Where the browser is

    def path(self):
        return urllib.parse.urlsplit(self.driver.current_url).path

    def describe(self):
        """Where the browser is and what the page says, for failure messages."""
        try:
            text = self.driver.execute_script("return document.body ? document.body.innerText : ''") or ""
            error = ""
            for e in self.driver.find_elements("css selector", "#error"):
                error = " #error data-code=%r: %r" % (e.get_attribute("data-code"), e.text)
            return "%s at %s (title %r)%s; page text: %r" % (
                self.name, self.driver.current_url, self.driver.title, error, re.sub(r"\s+", " ", text)[:1500])
        except Exception as failure:
            return "%s: cannot describe the page (%s)" % (self.name, failure)

    def expect_path(self, path, what):
        check(self.path() == path, "%s: expected to be at %s, but the browser is at %s — %s" % (what, path, self.path(), self.describe()))

    # Moves

    def settle(self):
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, WAIT).until(
            lambda d: d.execute_script("return document.readyState") == "complete",
            message="the page at %s did not finish loading within %d s" % (self.driver.current_url, WAIT))

    def open(self, path):
        self.driver.get(self.base + path)
        self.settle()

    def find(self, css, what=None):
        """The element `css`, waiting for it at most WAIT seconds."""
        from selenium.common.exceptions import TimeoutException
        from selenium.webdriver.support.ui import WebDriverWait

        try:
            return WebDriverWait(self.driver, WAIT).until(lambda d: (d.find_elements("css selector", css) or [None])[0])
        except TimeoutException:
            raise FlowFailure("no %s (%s) on the page — %s" % (css, what or "expected by the page contract", self.describe())) from None

    def all(self, css):
        """The elements `css` on the loaded page now (no wait: for counting, and for absence)."""
        return self.driver.find_elements("css selector", css)

    def count(self, css):
        return len(self.all(css))

    def text(self, css):
        return self.find(css).text.strip()

    def fill(self, css, value):
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def click(self, css_or_element, what=None):
        """Clicks a button or link that loads a new page, and waits for that page."""
        from selenium.common.exceptions import TimeoutException, WebDriverException
        from selenium.webdriver.support.ui import WebDriverWait

        element = self.find(css_or_element, what) if isinstance(css_or_element, str) else css_or_element
        label = css_or_element if isinstance(css_or_element, str) else (what or "an element")
        # A mark on this page's window: gone once the next page has loaded. (Selenium's
        # staleness_of trips over chromedriver's errors for a node of a document being replaced.)
        mark = secrets.token_hex(8)
        self.driver.execute_script("window.gatehouseFlowMark = arguments[0];", mark)
        element.click()
        try:
            # While the page is being replaced a script may fail (no context yet): try again.
            WebDriverWait(self.driver, WAIT, poll_frequency=0.05, ignored_exceptions=(WebDriverException,)).until(
                lambda d: d.execute_script("return window.gatehouseFlowMark || null;") != mark)
        except TimeoutException:
            raise FlowFailure("clicking %s did not load a new page within %d s (a form the browser refused to send?) — %s"
                              % (label, WAIT, self.describe())) from None
        self.settle()

    def error(self):
        """(data-code, text) of #error, or None."""
        found = self.all("#error")
        return (found[0].get_attribute("data-code"), found[0].text.strip()) if found else None

    def expect_error(self, code, what):
        error = self.error()
        check(error is not None, "%s: expected #error data-code=%s, there is no #error — %s" % (what, code, self.describe()))
        check(error[0] == code, "%s: expected #error data-code=%s, got %r (%r) — %s" % (what, code, error[0], error[1], self.describe()))
        return error[1]

    def expect_no_error(self, what):
        error = self.error()
        check(error is None, "%s: unexpected #error data-code=%r: %r — %s" % (what, error and error[0], error and error[1], self.describe()))

    # Screens

    def viewport(self, width, height, mobile=False):
        """Emulates a viewport of exactly `width`×`height` CSS pixels (a phone's when `mobile`)."""
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 2 if mobile else 1, "mobile": mobile})
        self.emulated = (width, height)

    def screenshot(self, path):
        """The whole page, as wide as the viewport and at least as tall, as a PNG."""
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        content = metrics.get("cssContentSize") or metrics["contentSize"]
        width, height = self.emulated or self.driver.execute_script("return [window.innerWidth, window.innerHeight];")
        height = max(height, math.ceil(content["height"]))
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


# MARK: Steps the flows share


@dataclasses.dataclass
class Enrolment:
    user: str
    recovery: str
    secret: str
    #: The TOTP step whose code confirmed the enrolment (spent: sign in with a later one).
    step: int
    backup_codes: list
    app_password: str


def demo_sign_in(b, user, password=DEMO_PASSWORD):
    """The demo webmail's sign-in; returns the path the browser ends at."""
    b.open("/demo/login")
    b.fill("#user", user)
    b.fill("#password", password)
    b.click("#sign-in")
    return b.path()


def sign_in_without_second_step(b, user):
    """A user who has not turned two-step on (the domain's mode is optional) signs straight in."""
    demo_sign_in(b, user)
    b.expect_path("/demo/inbox", "signing in as %s, who has no second step" % user)
    check(user in b.text("#signed-in"), "the inbox names someone else than %s: %r" % (user, b.text("#signed-in")))


def sign_out(b):
    b.open("/demo/inbox")
    b.click("#sign-out")
    b.expect_path("/demo/login", "after signing out")


def to_second_step(b, user):
    """Signs in as an enrolled `user` up to the second step."""
    demo_sign_in(b, user)
    b.expect_path("/account/second-step", "signing in as %s, who has two-step on" % user)
    check(b.text("#user") == user, "the second step names %r, not %s" % (b.text("#user"), user))


def second_step_totp(b, e, step, remember=False):
    """The second step with the code of `step`; ends in the inbox."""
    check(b.find("input[name=method]").get_attribute("value") == "totp",
          "the second step does not ask for the authenticator first — %s" % b.describe())
    b.fill("#code", totp(e.secret, step))
    if remember:
        box = b.find("#remember", "remember this device")
        if not box.is_selected():
            box.click()
    b.click("#verify")
    b.expect_path("/demo/inbox", "after the authenticator code of step %d" % step)


def enrol_recovery_email(run, b, user, recovery, visit=lambda name: None):
    """Enrolment step 1 at /account/enroll: the recovery address twice, then the mailed code."""
    b.expect_path("/account/enroll", "enrolment")
    visit("enroll-recovery-email")
    b.fill("#recovery-email", recovery)
    b.fill("#recovery-email-again", recovery)
    before = run.mail.mark()
    b.click("#send-code")
    b.expect_no_error("sending the recovery-address code")
    notice = b.text("#notice")
    check("@recovery.example" in notice, "the notice does not name the (masked) recovery address: %r" % notice)
    visit("enroll-recovery-code")
    code = run.mail.code(recovery, before, "recovery address confirmation")
    b.fill("#recovery-code", code)
    b.click("#confirm-recovery")
    b.expect_no_error("confirming the recovery address")


def read_qr(run, b, user):
    """Decodes the QR code in #qr with zbarimg and returns the otpauth URI's secret."""
    image = os.path.join(run.temp, "qr-%s.png" % secrets.token_hex(4))
    b.find("#qr", "the QR code").screenshot(image)
    decoded = subprocess.run([run.zbarimg, "--raw", "-q", image], capture_output=True, text=True, timeout=30)
    check(decoded.returncode == 0 and decoded.stdout.strip(),
          "zbarimg could not read the QR code in #qr (exit %d): %s" % (decoded.returncode, decoded.stderr.strip()))
    uri = decoded.stdout.strip().splitlines()[0]
    parts = urllib.parse.urlsplit(uri)
    check(parts.scheme == "otpauth" and parts.netloc == "totp", "the QR code is not an otpauth://totp/ URI: %r" % uri)
    check(user in urllib.parse.unquote(parts.path), "the QR code's label does not name %s: %r" % (user, uri))
    query = urllib.parse.parse_qs(parts.query)
    check("secret" in query, "the QR code's URI has no secret: %r" % uri)
    return query["secret"][0].upper()


def enrol(run, b, user, recovery, visit=lambda name: None):
    """Turns the authenticator on from the settings page, for a signed-in `user` without two-step:
    recovery address, authenticator (QR read back and checked against the typed key), then the
    backup codes and the app password, shown once. `visit(name)` is called on each screen."""
    b.open("/account/settings")
    check(b.text("#two-step-status").lower().startswith("off"), "two-step is not Off before enrolling: %r" % b.text("#two-step-status"))
    visit("settings-off")
    b.click("#turn-on")
    enrol_recovery_email(run, b, user, recovery, visit)
    visit("enroll-choose")
    b.click("#choose-totp")
    b.expect_no_error("choosing the authenticator")
    secret = read_qr(run, b, user)
    typed = re.sub(r"\s+", "", b.text("#totp-secret")).upper()
    check(typed == secret, "the key for typing (#totp-secret %r) differs from the QR code's secret %r" % (typed, secret))
    visit("enroll-totp")
    step = current_step()
    b.fill("#totp-code", totp(secret, step))
    b.click("#confirm-totp")
    b.expect_no_error("confirming the authenticator")
    codes = [li.text.strip() for li in b.all("#backup-codes li")]
    check(len(codes) == 10 and all(re.fullmatch(r"[a-z0-9]{5}-[a-z0-9]{5}", c) for c in codes),
          "expected ten backup codes xxxxx-xxxxx in #backup-codes, got %r — %s" % (codes, b.describe()))
    app_password = b.text("#app-password")
    check(b.find("#download").get_attribute("download") == "backup-codes.txt", "#download does not save backup-codes.txt")
    visit("enroll-done")
    b.click("#continue")
    b.expect_path("/account/settings", "after the enrolment's Continue")
    check(b.text("#two-step-status").lower().startswith("on"), "two-step is not On after enrolling: %r" % b.text("#two-step-status"))
    return Enrolment(user, recovery, secret, step, codes, app_password)


def enrolled_user(run, b, name="user"):
    """A fresh user, signed in, with the authenticator on; the browser ends on the settings page."""
    user, recovery = run.user(name)
    sign_in_without_second_step(b, user)
    return enrol(run, b, user, recovery)


# MARK: Passkeys


def passkey_browser(run, name="browser"):
    """A browser with Chromium's virtual authenticator (CTAP2, built in, resident keys, user
    verification that always succeeds), on pages served from localhost; fails, saying what is
    missing, when the Selenium, the driver or the page offers no WebAuthn."""
    host = urllib.parse.urlsplit(run.base).hostname
    check(host == "localhost", "the passkey flows need --base http://localhost:PORT (the relying party ID is localhost), not %s" % run.base)
    try:
        from selenium.webdriver.common.virtual_authenticator import VirtualAuthenticatorOptions
    except ImportError as error:
        raise FlowFailure("this Selenium has no virtual authenticator (selenium.webdriver.common.virtual_authenticator: %s); "
                          "install Selenium 4 or later" % error) from None
    from selenium.common.exceptions import WebDriverException

    b = run.browser(name)
    options = VirtualAuthenticatorOptions(
        protocol=VirtualAuthenticatorOptions.Protocol.CTAP2, transport=VirtualAuthenticatorOptions.Transport.INTERNAL,
        has_resident_key=True, has_user_verification=True, is_user_verified=True)
    try:
        b.driver.add_virtual_authenticator(options)
    except WebDriverException as error:
        raise FlowFailure("chromedriver did not add a virtual authenticator (WebDriver's WebAuthn extension): %s"
                          % str(error).split("\nStacktrace:")[0].strip()) from None
    b.open("/demo/login")
    webauthn = b.driver.execute_script(
        "return [window.isSecureContext, typeof window.PublicKeyCredential === 'function', !!(navigator.credentials && navigator.credentials.create)];")
    check(all(webauthn), "WebAuthn is missing at %s (secure context, PublicKeyCredential, navigator.credentials.create: %r)" % (run.base, webauthn))
    return b


def passkey_attempt(b, css, what):
    """Clicks a passkey button: passkey.js asks the node for options, the browser's WebAuthn
    answers, and the form is submitted, which loads a new page: returns "loaded". When passkey.js
    gives up instead, it says why in #passkey-status and enables the button again: returns
    "refused: " and its words."""
    from selenium.common.exceptions import TimeoutException, WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    button = b.find(css, what)
    mark = secrets.token_hex(8)
    b.driver.execute_script("window.gatehouseFlowMark = arguments[0];", mark)
    button.click()
    state = """
    if (window.gatehouseFlowMark !== arguments[0]) { return 'loaded'; }
    var status = document.getElementById('passkey-status'), button = document.querySelector(arguments[1]);
    var said = status ? status.textContent.trim() : '';
    return said && button && !button.disabled ? 'refused: ' + said : null;
    """
    try:
        outcome = WebDriverWait(b.driver, WAIT, poll_frequency=0.05, ignored_exceptions=(WebDriverException,)).until(
            lambda d: d.execute_script(state, mark, css))
    except TimeoutException:
        raise FlowFailure("%s: no new page within %d s after clicking %s (#passkey-status: %r) — %s"
                          % (what, WAIT, css, passkey_status(b), b.describe())) from None
    if outcome == "loaded":
        b.settle()
    return outcome


def passkey_click(b, css, what):
    """A passkey button that must load the next page; a refusal fails at once with its words."""
    outcome = passkey_attempt(b, css, what)
    check(outcome == "loaded", "%s: passkey.js said %r — %s" % (what, outcome, b.describe()))


def passkey_refused(b, css, what, words):
    """A passkey button whose attempt must fail in place: #passkey-status (role=status) says
    `words`, the browser stays on the page, and nothing is shown as an error."""
    path = b.path()
    outcome = passkey_attempt(b, css, what)
    check(outcome.startswith("refused: ") and words in outcome, "%s: expected #passkey-status to say %r, got %r — %s"
          % (what, words, outcome, b.describe()))
    check(b.find("#passkey-status").get_attribute("role") == "status", "#passkey-status is not role=status")
    check(b.path() == path, "%s: the browser left %s for %s" % (what, path, b.path()))
    b.expect_no_error(what)


def passkey_status(b):
    found = b.all("#passkey-status")
    return found[0].text.strip() if found else None


#: What a browser without WebAuthn and a closed prompt look like to passkey.js.
NO_WEBAUTHN = "window.PublicKeyCredential = undefined;"
CLOSED_PROMPT = """
navigator.credentials.%s = function () {
  return Promise.reject(new DOMException('The operation either timed out or was not allowed.', 'NotAllowedError'));
};"""


def add_passkey_refusals(b):
    """On the settings page: without WebAuthn, and with the prompt closed, adding a passkey says
    so in #passkey-status and adds nothing."""
    b.open("/account/settings")
    b.fill("#passkey-name", "Nowhere")
    b.driver.execute_script(NO_WEBAUTHN)
    passkey_refused(b, "#add-passkey", "adding a passkey without WebAuthn", "cannot create passkeys")
    b.open("/account/settings")
    b.fill("#passkey-name", "Nowhere")
    b.driver.execute_script(CLOSED_PROMPT % "create")
    passkey_refused(b, "#add-passkey", "adding a passkey with the prompt closed", "closed or timed out")
    b.open("/account/settings")
    check(b.count("#passkeys tr[data-id]") == 0, "a refused passkey was listed — %s" % b.describe())


def add_passkey(b, name):
    """On the settings page: names a passkey and adds it with the virtual authenticator; returns
    its row id."""
    b.open("/account/settings")
    before = [row.get_attribute("data-id") for row in b.all("#passkeys tr[data-id]")]
    check(b.count("#add-passkey-form") == 1, "the settings page offers no passkey (#add-passkey-form) — %s" % b.describe())
    label = b.find('label[for="passkey-name"]').text.strip()
    check(label == "Name, e.g. \u201cLaptop\u201d or \u201cPhone\u201d", "#passkey-name's label reads %r" % label)
    b.fill("#passkey-name", name)
    passkey_click(b, "#add-passkey", "adding the passkey %r" % name)
    b.expect_path("/account/settings", "after adding a passkey")
    b.expect_no_error("adding a passkey")
    check("Passkey added" in b.text("#notice"), "no notice that the passkey was added: %r" % b.text("#notice"))
    rows = [row.get_attribute("data-id") for row in b.all("#passkeys tr[data-id]")]
    added = [row for row in rows if row not in before]
    check(len(added) == 1, "expected one new row in #passkeys, found %r (before: %r) — %s" % (rows, before, b.describe()))
    cells = b.find('#passkeys tr[data-id="%s"]' % added[0])
    check(name in cells.text and "Never used" in cells.text, "the new passkey's row reads %r" % cells.text)
    return added[0]


def sign_in_with_passkey(b, e):
    """At the second step: #use-passkey, the virtual authenticator, then the inbox."""
    check(b.count("#use-passkey") == 1, "the second step offers no passkey (#use-passkey) — %s" % b.describe())
    check(b.find("input[name=method]").get_attribute("value") == "totp",
          "the code form is no longer the default beside the passkey — %s" % b.describe())
    passkey_click(b, "#use-passkey", "signing in with the passkey")
    b.expect_path("/demo/inbox", "after the passkey at the second step")
    check(e.user in b.text("#signed-in"), "the inbox does not name %s" % e.user)


def expect_passkey_session(b):
    b.open("/account/settings")
    how = b.text("#sessions tr.current td.how")
    check(how == "Password and passkey", "the current session's How reads %r, not a passkey sign-in — %s" % (how, b.describe()))


# MARK: Flows


@flow
def second_step_wrong_code_and_throttle(run):
    b = run.browser()
    e = enrolled_user(run, b)
    sign_out(b)
    to_second_step(b, e.user)
    wrong = wrong_code(e.secret)
    b.fill("#code", wrong)
    b.click("#verify")
    b.expect_path("/account/second-step", "after a wrong code")
    b.expect_error("invalid_code", "a wrong authenticator code")
    # Five wrong codes are free; then each failure starts a doubling wait, during which the page
    # says how long to wait.
    seen = []
    for _ in range(6):
        b.fill("#code", wrong)
        b.click("#verify")
        error = b.error()
        check(error is not None, "a wrong code gave no #error — %s" % b.describe())
        seen.append(error[0])
        if error[0] == "rate_limited":
            check(re.search(r"\b[Ww]ait \d+ (second|minute)s?\b", error[1]), "the rate-limit message names no wait: %r" % error[1])
            break
    check(seen[-1] == "rate_limited", "six more wrong codes never showed data-code=rate_limited: %r" % seen)


@flow
def authenticator_sign_in_and_remember(run):
    b = run.browser()
    e = enrolled_user(run, b)
    sign_out(b)
    to_second_step(b, e.user)
    second_step_totp(b, e, e.step + 1, remember=True)
    check(e.user in b.text("#signed-in"), "the inbox does not name %s" % e.user)
    sign_out(b)
    demo_sign_in(b, e.user)
    b.expect_path("/demo/inbox", "signing in again on the remembered device (no second step)")


@flow
def email_code_sign_in(run):
    b = run.browser()
    e = enrolled_user(run, b)
    sign_out(b)
    to_second_step(b, e.user)
    before = run.mail.mark()
    b.click("#email-me")
    b.expect_no_error("asking for an emailed code")
    check(b.count("#notice") == 1, "no #notice after the code was mailed — %s" % b.describe())
    code = run.mail.code(e.recovery, before, "sign-in code")
    b.fill("#code", code)
    b.click("#verify")
    b.expect_path("/demo/inbox", "after the emailed code")


@flow
def backup_code_sign_in(run):
    b = run.browser()
    e = enrolled_user(run, b)
    code = e.backup_codes[3]
    sign_out(b)
    to_second_step(b, e.user)
    b.click("#use-backup")
    b.fill("#code", code)
    b.click("#verify")
    b.expect_path("/demo/inbox", "after a backup code")
    sign_out(b)
    to_second_step(b, e.user)
    b.click("#use-backup")
    b.fill("#code", code)
    b.click("#verify")
    b.expect_path("/account/second-step", "a backup code used twice")
    b.expect_error("invalid_code", "a backup code used twice")


def app_password_row(b, e):
    rows = b.all("#app-passwords tr[data-id]")
    check(len(rows) == 1, "expected the one app password of the enrolment in #app-passwords, found %d rows — %s" % (len(rows), b.describe()))
    return rows[0].get_attribute("data-id")


@flow
def app_password_reveal_and_revoke(run):
    b = run.browser()
    e = enrolled_user(run, b)
    # Revealing needs a second step within the last 10 minutes; enrolling kept the session the
    # password alone opened, so sign in again with the authenticator.
    sign_out(b)
    to_second_step(b, e.user)
    second_step_totp(b, e, e.step + 1)
    b.open("/account/settings")
    row = app_password_row(b, e)
    b.click('#app-passwords tr[data-id="%s"] button.reveal' % row, "the eyeball of the app password")
    b.expect_no_error("revealing the app password")
    revealed = b.text("#revealed-password")
    check(re.fullmatch(r"[a-z]{24}", revealed.replace(" ", "")), "the revealed app password is not 24 lowercase letters: %r" % revealed)
    check(revealed.replace(" ", "") == e.app_password.replace(" ", ""),
          "the revealed app password %r is not the one shown at enrolment %r" % (revealed, e.app_password))
    check(b.find("#copy").get_attribute("data-copy") == "revealed-password", "#copy does not copy #revealed-password")
    b.open("/account/settings")
    b.click('#app-passwords tr[data-id="%s"] button.revoke' % row, "revoke the app password")
    b.expect_no_error("revoking the app password")
    b.open("/account/settings")
    check(b.count('#app-passwords tr[data-id="%s"]' % row) == 0, "the revoked app password is still listed — %s" % b.describe())


@flow
def forget_device(run):
    b = run.browser()
    e = enrolled_user(run, b)
    sign_out(b)
    to_second_step(b, e.user)
    second_step_totp(b, e, e.step + 1, remember=True)
    b.open("/account/settings")
    rows = b.all("#devices tr[data-id]")
    check(len(rows) == 1, "expected one remembered device in #devices, found %d — %s" % (len(rows), b.describe()))
    device = rows[0].get_attribute("data-id")
    b.click('#devices tr[data-id="%s"] button.forget' % device, "forget the device")
    b.expect_no_error("forgetting the device")
    b.open("/account/settings")
    check(b.count("#devices tr[data-id]") == 0, "the forgotten device is still listed — %s" % b.describe())
    sign_out(b)
    demo_sign_in(b, e.user)
    b.expect_path("/account/second-step", "signing in after the device was forgotten")


@flow
def sign_out_everywhere(run):
    user, _ = run.user()
    first = run.browser("first")
    second = run.browser("second")
    sign_in_without_second_step(first, user)
    sign_in_without_second_step(second, user)
    first.open("/account/settings")
    rows = first.all("#sessions tr[data-id]")
    check(len(rows) >= 2, "expected both browsers' sessions in #sessions, found %d — %s" % (len(rows), first.describe()))
    current = first.all("#sessions tr.current")
    check(len(current) == 1, "expected one row marked current in #sessions, found %d" % len(current))
    check(not current[0].find_elements("css selector", "button.sign-out-session"), "the current session has a sign-out button")
    first.click("#sign-out-others")
    first.expect_no_error("signing out everywhere else")
    first.open("/account/settings")
    check(first.count("#sessions tr[data-id]") == 1, "other sessions are still listed — %s" % first.describe())
    # The revocation reaches the node's view of sessions through its feed within about a second.
    deadline = time.monotonic() + WAIT
    while True:
        second.open("/demo/inbox")
        if second.path() == "/demo/login":
            break
        check(time.monotonic() < deadline, "the second browser is still signed in %d s after 'sign out everywhere else' — %s" % (WAIT, second.describe()))
        time.sleep(0.2)
    first.open("/demo/inbox")
    first.expect_path("/demo/inbox", "the browser that signed the others out is still signed in")


@flow
def forgot_password(run):
    b = run.browser()
    user, recovery = run.user()
    sign_in_without_second_step(b, user)
    b.open("/account/enroll")
    enrol_recovery_email(run, b, user, recovery)
    sign_out(b)
    b.open("/demo/login")
    b.click("#forgot")
    b.expect_path("/account/forgot-password", "the Forgot password link")
    b.fill("#user", user)
    before = run.mail.mark()
    b.click("#send-reset-code")
    b.expect_no_error("asking for a reset code")
    check("recovery email" in b.text("#notice"), "the notice does not say where the code went: %r" % b.text("#notice"))
    code = run.mail.code(recovery, before, "password reset code")
    wrong = "000000" if code != "000000" else "111111"
    b.fill("#reset-code", wrong)
    b.click("#check-reset-code")
    check(b.error() is not None, "a wrong reset code showed no #error — %s" % b.describe())
    b.fill("#reset-code", code)
    b.click("#check-reset-code")
    b.expect_no_error("the right reset code")
    b.click("#continue-reset")
    b.expect_path("/demo/reset-password", "Continue after the reset code")
    new_password = "new-" + secrets.token_hex(6)
    b.fill("#password", new_password)
    b.fill("#password_again", new_password)
    b.click("#set-password")
    b.expect_no_error("setting the new password")
    check(b.count("#notice") == 1, "no notice that the password changed — %s" % b.describe())
    demo_sign_in(b, user, DEMO_PASSWORD)
    b.expect_path("/demo/login", "the old password after the reset")
    check(b.error() is not None, "the old password showed no #error — %s" % b.describe())
    demo_sign_in(b, user, new_password)
    b.expect_path("/demo/inbox", "the new password after the reset")


@flow
def csrf_refused(run):
    b = run.browser()
    user, _ = run.user()
    # A sign-in form without its token: refused, nobody signed in.
    b.open("/demo/login")
    b.fill("#user", user)
    b.fill("#password", DEMO_PASSWORD)
    b.driver.execute_script("document.querySelectorAll('#login-form input[name=csrf]').forEach(function (e) { e.remove(); });")
    b.click("#sign-in")
    b.expect_error("csrf_failed", "the sign-in form without its csrf field")
    b.open("/demo/inbox")
    b.expect_path("/demo/login", "after the refused sign-in form")
    # A token that did not come from this browser's cookie: refused too.
    b.open("/demo/login")
    b.fill("#user", user)
    b.fill("#password", DEMO_PASSWORD)
    b.driver.execute_script("document.querySelector('#login-form input[name=csrf]').value = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA';")
    b.click("#sign-in")
    b.expect_error("csrf_failed", "the sign-in form with a forged csrf value")
    # Signed in, a sign-out form without its token changes nothing.
    sign_in_without_second_step(b, user)
    b.driver.execute_script("document.querySelectorAll('form[action=\"/account/sign-out\"] input[name=csrf]').forEach(function (e) { e.remove(); });")
    b.click("#sign-out")
    b.expect_error("csrf_failed", "the sign-out form without its csrf field")
    b.open("/demo/inbox")
    b.expect_path("/demo/inbox", "still signed in after the refused sign-out")
    # A form the page never had ("sign out everywhere else"), posted with the browser's cookies:
    # refused.
    b.open("/demo/inbox")
    b.driver.execute_script(
        "var f = document.createElement('form'); f.method = 'post'; f.action = '/account/settings/sessions/sign-out-others';"
        "var b = document.createElement('button'); b.type = 'submit'; b.id = 'forged'; f.appendChild(b);"
        "document.body.appendChild(f);")
    b.click("#forged")
    b.expect_error("csrf_failed", "a form posted without any csrf field")
    b.open("/demo/inbox")
    b.expect_path("/demo/inbox", "still signed in after the refused forged form")


@flow
def passkey_register_and_sign_in(run):
    b = passkey_browser(run)
    e = enrolled_user(run, b)
    add_passkey_refusals(b)
    check(len(b.driver.get_credentials()) == 0, "the virtual authenticator holds a credential before one was added")
    add_passkey(b, "Laptop")
    credentials = b.driver.get_credentials()
    check(len(credentials) == 1, "the virtual authenticator holds %d credentials after adding one" % len(credentials))
    sign_out(b)
    to_second_step(b, e.user)
    # A closed prompt changes nothing: still the second step, and the passkey works after it.
    b.driver.execute_script(CLOSED_PROMPT % "get")
    passkey_refused(b, "#use-passkey", "the passkey prompt closed at the second step", "closed or timed out")
    b.open("/account/second-step")
    sign_in_with_passkey(b, e)
    expect_passkey_session(b)
    check("Signed in with a passkey" in b.text("#events"), "the events do not name the passkey sign-in — %s" % b.describe())
    check(b.text("#passkeys td.last-used") != "Never used", "the passkey's last use was not recorded — %s" % b.describe())


@flow
def passkey_second_node(run):
    check(run.base2, "passkey_second_node needs --base2 http://localhost:PORT2, a second node sharing the first one's Redis")
    check(urllib.parse.urlsplit(run.base2).hostname == "localhost", "--base2 must be on localhost too, not %s" % run.base2)
    b = passkey_browser(run)
    e = enrolled_user(run, b)
    add_passkey(b, "Laptop")
    sign_out(b)
    # The same browser and authenticator, the other node: cookies are per host, not port, so the
    # challenge and session cookies travel with it.
    b.base = run.base2
    to_second_step(b, e.user)
    sign_in_with_passkey(b, e)
    check(urllib.parse.urlsplit(b.driver.current_url).port == urllib.parse.urlsplit(run.base2).port,
          "the sign-in did not stay on the second node: %s" % b.driver.current_url)
    expect_passkey_session(b)


@flow
def passkey_removed(run):
    b = passkey_browser(run)
    e = enrolled_user(run, b)
    row = add_passkey(b, "Phone")
    b.click('#passkeys tr[data-id="%s"] button.remove-passkey' % row, "remove the passkey")
    b.expect_path("/account/settings", "after removing the passkey")
    b.expect_no_error("removing the passkey")
    check("removed" in b.text("#notice"), "no notice that the passkey was removed: %r" % b.text("#notice"))
    check(b.count("#passkeys tr[data-id]") == 0, "the removed passkey is still listed — %s" % b.describe())
    # The authenticator still holds the credential; the node no longer accepts or offers it.
    check(len(b.driver.get_credentials()) == 1, "the virtual authenticator lost its credential")
    sign_out(b)
    to_second_step(b, e.user)
    check(b.count("#use-passkey") == 0, "the second step still offers a passkey after it was removed — %s" % b.describe())
    second_step_totp(b, e, e.step + 1)


LABEL_CHECK = """
var problems = [];
document.querySelectorAll('input, select, textarea').forEach(function (e) {
  var type = (e.getAttribute('type') || '').toLowerCase();
  if (['hidden', 'submit', 'button', 'image', 'reset'].indexOf(type) >= 0) { return; }
  var style = getComputedStyle(e), box = e.getBoundingClientRect();
  if (style.display === 'none' || style.visibility === 'hidden' || (box.width === 0 && box.height === 0)) { return; }
  var label = e.id && document.querySelector('label[for="' + CSS.escape(e.id) + '"]');
  var labelled = (label && label.textContent.trim()) || (e.getAttribute('aria-label') || '').trim();
  if (!labelled) { problems.push(e.outerHTML.slice(0, 200)); }
});
return problems;
"""


@flow
def labels_and_phone_width(run):
    b = run.browser()
    b.viewport(375, 800, mobile=True)
    checked = []

    def page(name):
        unlabelled = b.driver.execute_script(LABEL_CHECK)
        check(not unlabelled, "%s (%s): inputs without a <label for> or aria-label: %s" % (name, b.path(), unlabelled))
        width, scroll = b.driver.execute_script("return [window.innerWidth, document.documentElement.scrollWidth];")
        check(width <= 375, "%s (%s): the page made the phone's viewport %d px wide (zoomed out to fit wide content)" % (name, b.path(), width))
        check(scroll <= width, "%s (%s): wider than a phone: scrollWidth %d > innerWidth %d" % (name, b.path(), scroll, width))
        checked.append(name)

    b.open("/demo/login")
    page("demo login")
    user, recovery = run.user()
    sign_in_without_second_step(b, user)
    page("demo inbox")
    e = enrol(run, b, user, recovery, visit=page)
    page("settings (two-step on)")
    sign_out(b)
    to_second_step(b, user)
    page("second step (authenticator)")
    b.click("#use-backup")
    page("second step (backup code)")
    b.open("/account/forgot-password")
    page("forgot password")
    b.fill("#user", user)
    b.click("#send-reset-code")
    page("forgot password (code)")
    print("checked at 375 px: %s" % ", ".join(checked))
    check(e.secret, "no enrolment")


@flow
def screenshots(run):
    directory = run.screenshots
    check(directory, "the screenshots flow needs --screenshots DIR")
    os.makedirs(directory, exist_ok=True)
    b = run.browser()
    b.viewport(1280, 900)
    saved = []

    def shoot(name):
        path = os.path.join(directory, name + ".png")
        b.screenshot(path)
        saved.append(path)

    user, recovery = run.user("kate")
    sign_in_without_second_step(b, user)
    e = enrol(run, b, user, recovery, visit=lambda name: {
        "enroll-totp": lambda: shoot("enroll-authenticator"),
        "enroll-done": lambda: shoot("backup-codes"),
    }.get(name, lambda: None)())
    sign_out(b)
    to_second_step(b, user)
    shoot("second-step")
    second_step_totp(b, e, e.step + 1)
    b.open("/account/settings")
    shoot("settings")
    sign_out(b)
    b.open("/account/forgot-password")
    shoot("forgot-password")
    for path in saved:
        with open(path, "rb") as f:
            check(f.read(8) == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path)
    print("saved %s" % ", ".join(saved))


# MARK: Running


def locate(program, package, given):
    """The program's path; a missing one fails naming the Debian package (never a skip)."""
    path = given or shutil.which(program)
    if not path or not os.access(path, os.X_OK):
        raise SystemExit("flows.py: %s is missing: install the Debian package '%s' (apt-get install %s, or scripts/bootstrap.sh --tests)"
                         % (program, package, package))
    return path


class FlowTimeout(Exception):
    pass


def main():
    parser = argparse.ArgumentParser(description="Gatehouse's pages in headless Chromium (Selenium).")
    parser.add_argument("--base", help="the node, http://127.0.0.1:PORT (http://localhost:PORT for the passkey flows)")
    parser.add_argument("--base2", help="a second node sharing the first one's Redis, http://localhost:PORT (passkey_second_node)")
    parser.add_argument("--mail-dir", help="the SMTP sink's directory (message-*.json)")
    parser.add_argument("--screenshots", help="where the screenshots flow saves its PNGs")
    parser.add_argument("--domain", default="example.org", help="the domain of the flows' addresses (its policy must allow app password reveal)")
    parser.add_argument("--temp", help="a directory for browser profiles and images (default: a new temporary one)")
    parser.add_argument("--chromium", help="Chromium's path (default: chromium on PATH)")
    parser.add_argument("--chromedriver", help="chromedriver's path (default: chromedriver on PATH)")
    parser.add_argument("--zbarimg", help="zbarimg's path (default: zbarimg on PATH)")
    parser.add_argument("--list", action="store_true", help="print the flows' names and exit")
    parser.add_argument("flows", nargs="*", metavar="FLOW")
    args = parser.parse_args()
    if args.list:
        print("\n".join(FLOWS))
        return 0
    if not args.base or not args.mail_dir or not args.flows:
        parser.error("--base, --mail-dir and at least one FLOW are required (--list names them)")
    unknown = [name for name in args.flows if name not in FLOWS]
    if unknown:
        parser.error("unknown flow(s) %s; the flows are: %s" % (", ".join(unknown), ", ".join(FLOWS)))
    try:
        import selenium  # noqa: F401
    except ImportError:
        raise SystemExit("flows.py: the Python module selenium is missing for %s: install it with "
                         "python3 -m pip install selenium (scripts/bootstrap.sh --tests does this)" % sys.executable)
    args.chromium = locate("chromium", "chromium", args.chromium)
    args.chromedriver = locate("chromedriver", "chromium-driver", args.chromedriver)
    args.zbarimg = locate("zbarimg", "zbar-tools", args.zbarimg)

    # SIGTERM (the Swift suite's timeout) and the per-flow alarm unwind through `finally`, so
    # every browser is quit.
    def terminated(number, frame):
        raise SystemExit("flows.py: stopped by signal %d" % number)

    def too_long(number, frame):
        raise FlowTimeout("the flow took longer than %d s" % FLOW_LIMIT)

    signal.signal(signal.SIGTERM, terminated)
    signal.signal(signal.SIGALRM, too_long)

    own_temp = args.temp is None
    temp = tempfile.mkdtemp(prefix="gatehouse-browser-") if own_temp else args.temp
    failed = []
    try:
        for name in args.flows:
            run = Run(args, tempfile.mkdtemp(prefix=name + "-", dir=temp))
            started = time.monotonic()
            signal.alarm(FLOW_LIMIT)
            try:
                FLOWS[name](run)
                signal.alarm(0)
                print("flow %s: passed in %.1f s" % (name, time.monotonic() - started), flush=True)
            except BaseException as error:
                signal.alarm(0)
                failed.append(name)
                # Selenium's messages carry chromedriver's native stack trace: not useful here.
                message = str(error).split("\nStacktrace:")[0].strip()
                if not isinstance(error, FlowFailure):
                    message = "%s: %s" % (type(error).__name__, message)
                print("flow %s: FAILED after %.1f s: %s" % (name, time.monotonic() - started, message), file=sys.stderr, flush=True)
                for b in run.browsers:
                    where = b.describe()
                    if where not in message:
                        print("  where: " + where, file=sys.stderr)
                frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == __file__ and f.name != "main"]
                print("  at: " + " → ".join("%s:%d" % (f.name, f.lineno) for f in frames), file=sys.stderr)
                if isinstance(error, (KeyboardInterrupt, SystemExit)):
                    raise
            finally:
                signal.alarm(0)
                run.close()
    finally:
        if own_temp:
            shutil.rmtree(temp, ignore_errors=True)
    if failed:
        print("failed: %s" % ", ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
