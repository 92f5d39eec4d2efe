/// The second step at sign-in. A passkey, where the account has one, is a button above the code
/// form (passkey.js runs the browser's prompt and submits the hidden `#passkey-form`); the code
/// form stays the default.
enum SignInTemplates {
    static let secondStep = #"""
{{<layout}}{{$content}}
<section class="card">
<h1>Verify it's you</h1>
<p class="lead">Signing in as <strong id="user">{{user}}</strong>. {{prompt}}</p>
{{#notice}}<p class="notice" role="status" id="notice">{{notice}}</p>{{/notice}}
{{#error}}<p class="error" role="alert" id="error" data-code="{{errorCode}}">{{error}}</p>{{/error}}
{{#offerPasskey}}
<div class="passkey-choice">
<button type="button" class="secondary" id="use-passkey">Use a passkey</button>
<p class="fine" id="passkey-status" role="status" aria-live="polite"></p>
</div>
<form method="post" action="/account/second-step/passkey" id="passkey-form" data-options="/account/second-step/passkey-options" hidden>
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="credential_id" value="">
<input type="hidden" name="client_data_json" value="">
<input type="hidden" name="authenticator_data" value="">
<input type="hidden" name="signature" value="">
<input type="hidden" name="remember" value="">
</form>
{{#hasMethod}}<p class="fine or">Or enter a code:</p>{{/hasMethod}}
{{/offerPasskey}}
{{#hasMethod}}
<form method="post" action="/account/second-step" id="code-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="method" value="{{method}}">
<label for="code">{{codeLabel}}</label>
{{#numeric}}<input class="code" type="text" id="code" name="code" inputmode="numeric" pattern="[0-9]{6}" maxlength="6" autocomplete="one-time-code" autofocus required>{{/numeric}}
{{^numeric}}<input class="code" type="text" id="code" name="code" maxlength="16" autocomplete="off" autocapitalize="none" spellcheck="false" autofocus required>{{/numeric}}
{{#showRemember}}<label class="check" for="remember"><input type="checkbox" id="remember" name="remember" value="1"> Remember this device for {{rememberDays}} days</label>{{/showRemember}}
<button type="submit" id="verify">Verify</button>
</form>
{{/hasMethod}}
{{#noMethod}}<p class="error" role="alert" id="error" data-code="no_method">No second step is available for this account. Contact your provider's support.</p>{{/noMethod}}
<div class="alternatives">
{{#offerEmail}}<form method="post" action="/account/second-step/email" id="email-form"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="link" id="email-me">Email me a code instead (to {{emailSentTo}})</button></form>{{/offerEmail}}
{{#offerTOTP}}<a href="/account/second-step?method=totp" id="use-totp">Use my authenticator app</a>{{/offerTOTP}}
{{#offerBackup}}<a href="/account/second-step?method=backup_code" id="use-backup">Use a backup code</a>{{/offerBackup}}
</div>
</section>
{{/content}}{{/layout}}
"""#
}
