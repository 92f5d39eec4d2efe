/// The stand-in webmail's pages (marked as a demo on every page).
enum DemoTemplates {
    static let login = #"""
{{<layout}}{{$content}}
<section class="card">
<h1>Sign in to Demo Mail</h1>
<p class="fine" id="demo-note">A stand-in webmail for trying {{issuer}}: it is not a mail service. Every address has the password <code>{{password}}</code> until you change it with “Forgot password”.</p>
{{#notice}}<p class="notice" role="status" id="notice">{{notice}}</p>{{/notice}}
{{#error}}<p class="error" role="alert" id="error">{{error}}</p>{{/error}}
<form method="post" action="/demo/login" id="login-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="user">Email address</label>
<input type="email" id="user" name="user" value="{{user}}" autocomplete="username" required>
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password" required>
<button type="submit" id="sign-in">Sign in</button>
</form>
<p><a href="/account/forgot-password" id="forgot">Forgot password?</a></p>
</section>
{{/content}}{{/layout}}
"""#

    static let inbox = #"""
{{<layout}}{{$content}}
<section class="card">
<h1>Inbox</h1>
<p id="signed-in">Signed in as <strong>{{user}}</strong> <span class="fine">({{methods}})</span>.</p>
<p class="fine">This stand-in webmail has no mail. It shows that the session cookie {{issuer}} set opens it.</p>
<div class="row">
<a class="button secondary" href="/account/settings" id="settings">Security settings</a>
<form method="post" action="/account/sign-out"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="secondary" id="sign-out">Sign out</button></form>
</div>
</section>
{{/content}}{{/layout}}
"""#

    static let reset = #"""
{{<layout}}{{$content}}
<section class="card">
<h1>Choose a new password</h1>
<p class="fine">Demo Mail sets its own password here, after {{issuer}} checked the code from your recovery email.</p>
{{#error}}<p class="error" role="alert" id="error">{{error}}</p>{{/error}}
<form method="post" action="/demo/reset-password/set" id="reset-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="reset_token" value="{{resetToken}}">
<label for="password">New password</label>
<input type="password" id="password" name="password" autocomplete="new-password" minlength="8" required>
<label for="password_again">New password again</label>
<input type="password" id="password_again" name="password_again" autocomplete="new-password" minlength="8" required>
<button type="submit" id="set-password">Set password</button>
</form>
</section>
{{/content}}{{/layout}}
"""#
}
