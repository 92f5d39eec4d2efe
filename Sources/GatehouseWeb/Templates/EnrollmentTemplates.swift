/// Turning two-step on: recovery email, method, authenticator app, backup codes.
///
/// A recovery address comes first whichever second step is chosen (a lost phone, or mailed
/// codes, both need it), then the choice, then the authenticator's key, then the backup codes
/// and the mail-app password, shown once.
enum EnrollmentTemplates {
    static let all: [String: String] = [
        "enroll-recovery": recoveryEmail,
        "enroll-recovery-code": recoveryCode,
        "enroll-choose": choose,
        "enroll-totp": totp,
        "enroll-done": done,
    ]

    /// The steps as a short trail above each form, so a person knows how far along they are.
    static let trail = #"""
<p class="fine" id="enroll-step">Step {{step}} of 4 · Turn on two-step verification</p>
"""#

    /// Step 1: the recovery address, typed twice.
    static let recoveryEmail = #"""
{{<layout}}{{$content}}
<section class="card">
\#(trail)
<h1>Add a recovery email</h1>
<p class="lead">Two-step verification needs an email address that is not this mailbox. We use it to
reset your password and, if you lose your phone, to help you back in.</p>
{{#error}}<p class="error" role="alert" id="error" data-code="{{errorCode}}">{{error}}</p>{{/error}}
<form method="post" action="/account/enroll/recovery-email" id="recovery-email-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="recovery-email">Recovery email address</label>
<input type="email" id="recovery-email" name="recovery_email" value="{{address}}" maxlength="254" autocomplete="email" autocapitalize="none" spellcheck="false" required>
<label for="recovery-email-again">The same address again</label>
<input type="email" id="recovery-email-again" name="recovery_email_again" maxlength="254" autocomplete="off" autocapitalize="none" spellcheck="false" required>
<button type="submit" id="send-code">Send a code</button>
</form>
</section>
{{/content}}{{/layout}}
"""#

    /// Step 1, continued: the code mailed to the new address.
    static let recoveryCode = #"""
{{<layout}}{{$content}}
<section class="card">
\#(trail)
<h1>Confirm your recovery email</h1>
{{#notice}}<p class="notice" role="status" id="notice">{{notice}}</p>{{/notice}}
{{#error}}<p class="error" role="alert" id="error" data-code="{{errorCode}}">{{error}}</p>{{/error}}
<form method="post" action="/account/enroll/recovery-email/confirm" id="recovery-code-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="recovery-code">6-digit code from the email</label>
<input class="code" type="text" id="recovery-code" name="code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" autofocus required>
<button type="submit" id="confirm-recovery">Confirm</button>
</form>
<p class="fine">No email? Check the spam folder, or <a href="/account/enroll" id="change-recovery-email">enter the address again</a>.</p>
</section>
{{/content}}{{/layout}}
"""#

    /// Step 2: authenticator app or mailed codes.
    static let choose = #"""
{{<layout}}{{$content}}
<section class="card">
\#(trail)
<h1>Choose your second step</h1>
{{#notice}}<p class="notice" role="status" id="notice">{{notice}}</p>{{/notice}}
{{#error}}<p class="error" role="alert" id="error" data-code="{{errorCode}}">{{error}}</p>{{/error}}
<p class="lead">After your password, you will be asked for a 6-digit code.</p>
{{#offerTOTP}}
<form method="post" action="/account/enroll/totp" id="choose-totp-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<h2>Authenticator app</h2>
<p>Codes from an app on your phone, such as Google Authenticator, Microsoft Authenticator or 2FAS. Works without a signal. Recommended.</p>
<button type="submit" id="choose-totp">Use an authenticator app</button>
</form>
{{/offerTOTP}}
{{#offerEmail}}
<form method="post" action="/account/enroll/email" id="choose-email-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<h2>Codes by email</h2>
<p>We email a code to your recovery address {{recoveryAddress}} each time you sign in.</p>
<button type="submit" class="{{#offerTOTP}}secondary{{/offerTOTP}}" id="choose-email">Email me codes</button>
</form>
{{/offerEmail}}
</section>
{{/content}}{{/layout}}
"""#

    /// Step 3: the authenticator's key as a QR code and as text, and the first code.
    /// `{{{qr}}}` is Gatehouse's own SVG (from the otpauth URI, no user text in the markup).
    static let totp = #"""
{{<layout}}{{$content}}
<section class="card">
\#(trail)
<h1>Set up your authenticator app</h1>
{{#error}}<p class="error" role="alert" id="error" data-code="{{errorCode}}">{{error}}</p>{{/error}}
<ol>
<li>Open your authenticator app and add an account.</li>
<li>Scan this QR code:
<div class="qr" id="qr">{{{qr}}}</div>
<p class="fine">Can't scan it? Enter this key by hand (a time-based key):</p>
<p><code class="secret" id="totp-secret">{{secret}}</code></p>
<p class="fine"><a href="{{otpauth}}" id="totp-link">On this phone? Open the key in your authenticator app.</a></p>
</li>
<li>Enter the {{digits}}-digit code the app shows.</li>
</ol>
<form method="post" action="/account/enroll/totp/confirm" id="totp-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="totp-code">Code from your authenticator app</label>
<input class="code" type="text" id="totp-code" name="code" inputmode="numeric" pattern="{{codePattern}}" maxlength="{{digits}}" autocomplete="one-time-code" autofocus required>
<button type="submit" id="confirm-totp">Turn on two-step verification</button>
</form>
<div class="alternatives">
<form method="post" action="/account/enroll/totp" id="restart-totp-form"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="link" id="restart-totp">Start again with a new key</button></form>
{{#offerEmail}}<form method="post" action="/account/enroll/email" id="choose-email-form"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="link" id="choose-email">Email me codes instead</button></form>{{/offerEmail}}
</div>
</section>
{{/content}}{{/layout}}
"""#

    /// Step 4 (and the settings page's "new backup codes"): shown once, never from a GET.
    static let done = #"""
{{<layout}}{{$content}}
<section class="card">
{{#enrolled}}\#(trail){{/enrolled}}
<h1>{{heading}}</h1>
{{#notice}}<p class="notice" role="status" id="notice">{{notice}}</p>{{/notice}}
<h2>Your backup codes</h2>
<p>If you lose your phone or cannot get a code, each of these codes signs you in once. Keep them
somewhere safe, away from your phone. <strong>They are shown only now.</strong></p>
<ol class="codes" id="backup-codes">
{{#codes}}<li>{{.}}</li>
{{/codes}}
</ol>
<div class="row no-print">
<button type="button" class="secondary" id="print" data-print>Print</button>
<a class="button secondary" id="download" href="{{download}}" download="backup-codes.txt">Download</a>
</div>
{{#hasAppPassword}}
<h2>Password for mail apps</h2>
<p>Mail apps (IMAP, POP and SMTP) cannot ask for a code. Use this password in them instead of
your usual one. It is shown only now; you can make more in your security settings.</p>
<p><span class="secret" id="app-password">{{appPassword}}</span></p>
{{/hasAppPassword}}
<p><a class="button" href="{{continueTo}}" id="continue">{{continueLabel}}</a></p>
</section>
{{/content}}{{/layout}}
"""#
}
