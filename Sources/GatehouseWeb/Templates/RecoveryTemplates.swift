/// Forgot password: the address, the mailed code, and the hand-over to the provider's page that
/// sets the new password.
enum RecoveryTemplates {
    static let all: [String: String] = [
        "forgot-start": start,
        "forgot-code": code,
        "forgot-continue": continueReset,
    ]

    /// The address whose password is forgotten.
    static let start = #"""
{{<layout}}{{$content}}
<section class="card">
<h1>Forgot your password?</h1>
<p class="lead">Enter your email address. If it has a confirmed recovery email, we send a code there.</p>
{{#error}}<p class="error" role="alert" id="error" data-code="{{errorCode}}">{{error}}</p>{{/error}}
<form method="post" action="/account/forgot-password" id="forgot-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="user">Your email address</label>
<input type="email" id="user" name="user" value="{{user}}" maxlength="254" autocomplete="username" autocapitalize="none" spellcheck="false" autofocus required>
<button type="submit" id="send-reset-code">Send a code</button>
</form>
</section>
{{/content}}{{/layout}}
"""#

    /// The code form: the same page whether or not the address exists or has a recovery email.
    static let code = #"""
{{<layout}}{{$content}}
<section class="card">
<h1>Check your recovery email</h1>
{{#notice}}<p class="notice" role="status" id="notice">{{notice}}</p>{{/notice}}
{{#error}}<p class="error" role="alert" id="error" data-code="{{errorCode}}">{{error}}</p>{{/error}}
<form method="post" action="/account/forgot-password/code" id="reset-code-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="user" value="{{user}}">
<p class="fine">Resetting the password of <strong>{{user}}</strong>.</p>
<label for="reset-code">6-digit code from the email</label>
<input class="code" type="text" id="reset-code" name="code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" autofocus required>
<button type="submit" id="check-reset-code">Continue</button>
</form>
<div class="alternatives">
<form method="post" action="/account/forgot-password" id="resend-form"><input type="hidden" name="csrf" value="{{csrf}}"><input type="hidden" name="user" value="{{user}}"><button type="submit" class="link" id="resend-reset-code">Send a new code</button></form>
<a href="/account/forgot-password" id="other-address">Use another address</a>
</div>
</section>
{{/content}}{{/layout}}
"""#

    /// The right code: the reset token goes by form post (never in a URL) to the provider's page.
    static let continueReset = #"""
{{<layout}}{{$content}}
<section class="card">
<h1>Choose a new password</h1>
<p class="notice" role="status" id="notice">The code is right. Continue within {{minutes}} minutes to choose a new password for <strong>{{user}}</strong>.</p>
<form method="post" action="{{action}}" id="reset-form">
{{#withCSRF}}<input type="hidden" name="csrf" value="{{csrf}}">{{/withCSRF}}
<input type="hidden" name="reset_token" value="{{resetToken}}">
<button type="submit" id="continue-reset">Choose a new password</button>
</form>
</section>
{{/content}}{{/layout}}
"""#
}
