/// The settings page: two-step status, backup codes, passkeys (where the domain allows them),
/// app passwords, remembered devices, sessions and recent security events, one card each.
///
/// Secrets shown once (new backup codes, a new or revealed app password) arrive only in the
/// answer to the form that made or revealed them; the page's GET never carries one.
enum SettingsTemplates {
    static let all: [String: String] = [
        "settings": settings,
    ]

    static let settings = #"""
{{<layout}}{{$content}}
<section class="card{{#hasBackupCodes}} no-print{{/hasBackupCodes}}">
<h1>Security settings</h1>
<p class="lead">How you sign in to <strong>{{user}}</strong>, the passwords your mail apps use, and where you are signed in.</p>
{{#notice}}<p class="notice" role="status" id="notice">{{notice}}</p>{{/notice}}
{{#error}}<p class="error" role="alert" id="error" data-code="{{errorCode}}">{{error}}</p>{{/error}}
</section>

{{#hasBackupCodes}}
<section class="card" id="new-backup-codes-card" aria-labelledby="backup-codes-title">
<h2 id="backup-codes-title">Backup codes for {{user}}</h2>
<p>Keep these somewhere safe, such as printed in a drawer or in a password manager. Each code works once, when you cannot use your usual second step. Your old codes no longer work. These codes are shown only now.</p>
<ol class="codes" id="backup-codes">
{{#backupCodes}}<li>{{.}}</li>
{{/backupCodes}}</ol>
<div class="row no-print">
<button type="button" class="secondary" id="print" data-print>Print</button>
<a class="button secondary" id="download" download="backup-codes.txt" href="{{backupCodesDownload}}">Download</a>
</div>
</section>
{{/hasBackupCodes}}

<section class="card{{#hasBackupCodes}} no-print{{/hasBackupCodes}}" id="two-step" aria-labelledby="two-step-title">
<h2 id="two-step-title">Two-step verification</h2>
<p>Status: {{#twoStepOn}}<span class="status-on" id="two-step-status">On</span>{{/twoStepOn}}{{^twoStepOn}}<span class="status-off" id="two-step-status">Off</span>{{/twoStepOn}}{{#methodWords}} <span class="fine" id="two-step-method">· {{methodWords}}</span>{{/methodWords}}</p>
{{#recoveryEmail}}<p class="fine" id="recovery-email">Recovery email: {{recoveryEmail}}{{^recoveryVerified}} (not confirmed yet){{/recoveryVerified}}</p>{{/recoveryEmail}}
{{#twoStepUnavailable}}<p id="two-step-unavailable">Two-step verification is not available for your domain.</p>{{/twoStepUnavailable}}
{{^twoStepUnavailable}}
{{^twoStepOn}}
<p>With two-step verification, signing in needs your password and a code from your phone or your recovery email, so a stolen password alone is not enough.</p>
<p><a class="button" href="/account/enroll" id="turn-on">Turn on</a></p>
{{/twoStepOn}}
{{#twoStepOn}}
<h3>Backup codes</h3>
<p>Backup codes left: <strong id="backup-remaining">{{backupRemaining}}</strong>{{#backupNone}} <span class="fine">— none left: get new ones, so that losing your phone does not lock you out.</span>{{/backupNone}}{{#backupLow}} <span class="fine">— running low: get new ones.</span>{{/backupLow}}</p>
<form method="post" action="/account/settings/backup-codes">
<input type="hidden" name="csrf" value="{{csrf}}">
<button type="submit" class="secondary" id="new-backup-codes">Get new backup codes</button>
</form>
{{#enforced}}<p class="fine" id="two-step-required">Your provider requires two-step verification, so it cannot be turned off.</p>{{/enforced}}
{{#canTurnOff}}
<h3>Turn off</h3>
<form method="post" action="/account/settings/two-step/off" id="turn-off-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="disable-code">{{disableLabel}}</label>
<input class="code" type="text" id="disable-code" name="code" maxlength="16" autocomplete="one-time-code" autocapitalize="none" spellcheck="false" required>
<p class="fine">Turning it off also deletes your backup codes and app passwords: mail apps then use your normal password again.</p>
<button type="submit" class="danger" id="turn-off">Turn off two-step verification</button>
</form>
{{/canTurnOff}}
{{/twoStepOn}}
{{/twoStepUnavailable}}
</section>

{{#passkeysOffered}}
<section class="card{{#hasBackupCodes}} no-print{{/hasBackupCodes}}" id="passkeys-card" aria-labelledby="passkeys-title">
<h2 id="passkeys-title">Passkeys</h2>
<p>With a passkey you finish signing in with your fingerprint, face, screen lock or security key instead of typing a code. It works only on this site, so a fake site cannot trick you into giving it away. Your codes keep working too.</p>
<table id="passkeys" class="stack">
<thead><tr><th scope="col">Name</th><th scope="col">Added</th><th scope="col">Last used</th><th scope="col" aria-label="Actions"></th></tr></thead>
<tbody>
{{#passkeys}}<tr data-id="{{id}}">
<td class="name">{{name}}{{#synced}} <span class="fine synced" title="Copied to your other devices by your password manager or platform">synced</span>{{/synced}}</td>
<td class="created"><time datetime="{{createdISO}}">{{created}}</time></td>
<td class="last-used">{{lastUsed}}</td>
<td class="actions"><form method="post" action="/account/settings/passkeys/{{id}}/remove"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="danger small remove-passkey" aria-label="Remove the passkey {{name}}">Remove</button></form></td>
</tr>
{{/passkeys}}{{^hasPasskeys}}<tr class="empty"><td colspan="4" class="fine" id="no-passkeys">You have no passkeys.</td></tr>
{{/hasPasskeys}}</tbody>
</table>
<h3>Add a passkey</h3>
<form method="post" action="/account/settings/passkeys" id="add-passkey-form" data-options="/account/settings/passkeys/options">
<input type="hidden" name="csrf" value="{{csrf}}">
<input type="hidden" name="client_data_json" value="">
<input type="hidden" name="attestation_object" value="">
<label for="passkey-name">Name, e.g. “Laptop” or “Phone”</label>
<input type="text" id="passkey-name" name="name" maxlength="64" value="{{passkeyNameEntered}}" autocomplete="off" required>
<button type="submit" id="add-passkey">Add a passkey</button>
<p class="fine" id="passkey-status" role="status" aria-live="polite"></p>
</form>
</section>
{{/passkeysOffered}}

<section class="card{{#hasBackupCodes}} no-print{{/hasBackupCodes}}" id="app-passwords-card" aria-labelledby="app-passwords-title">
<h2 id="app-passwords-title">App passwords</h2>
<p>Mail apps that cannot ask for a code (IMAP, POP and SMTP, as in Thunderbird, Outlook or a phone's mail app) sign in with an app password instead of your normal password. Make one per app, so you can revoke one app without touching the others.</p>
{{#newPassword}}
<div class="notice" role="status" id="new-app-password-box">
<p>Your new app password for <strong>{{newPasswordLabel}}</strong>:</p>
<p><span class="secret" id="new-app-password">{{newPassword}}</span> <button type="button" class="secondary small" id="copy-new" data-copy="new-app-password">Copy</button></p>
<p class="fine">Enter it in the app where it asks for your password{{^revealAllowed}}. It is shown only now{{/revealAllowed}}. Spaces do not matter.</p>
</div>
{{/newPassword}}
{{#revealedPassword}}
<div class="notice" role="status" id="revealed-box">
<p>App password <strong>{{revealedLabel}}</strong>:</p>
<p><span class="secret" id="revealed-password">{{revealedPassword}}</span> <button type="button" class="secondary small" id="copy" data-copy="revealed-password">Copy</button></p>
</div>
{{/revealedPassword}}
<table id="app-passwords" class="stack">
<thead><tr><th scope="col">Name</th><th scope="col">For</th><th scope="col">Created</th><th scope="col">Last used</th><th scope="col" aria-label="Actions"></th></tr></thead>
<tbody>
{{#appPasswords}}<tr data-id="{{id}}">
<td class="label">{{label}}</td>
<td class="services">{{services}}</td>
<td class="created"><time datetime="{{createdISO}}">{{created}}</time></td>
<td class="last-used">{{lastUsed}}</td>
<td class="actions"><div class="row">
{{#revealAllowed}}<form method="post" action="/account/settings/app-passwords/{{id}}/reveal"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="secondary small reveal" title="Show this password" aria-label="Show the password {{label}}"><svg class="eye" aria-hidden="true" viewBox="0 0 24 24" width="18" height="18"><path d="M12 5C6.5 5 2.7 9.2 1.5 12c1.2 2.8 5 7 10.5 7s9.3-4.2 10.5-7C21.3 9.2 17.5 5 12 5zm0 11.5A4.5 4.5 0 1 1 12 7.5a4.5 4.5 0 0 1 0 9zm0-2.3a2.2 2.2 0 1 0 0-4.4 2.2 2.2 0 0 0 0 4.4z" fill="currentColor"/></svg> Show</button></form>{{/revealAllowed}}
<form method="post" action="/account/settings/app-passwords/{{id}}/delete"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="danger small revoke" aria-label="Revoke {{label}}">Revoke</button></form>
</div></td>
</tr>
{{/appPasswords}}{{^hasAppPasswords}}<tr class="empty"><td colspan="5" class="fine" id="no-app-passwords">You have no app passwords.</td></tr>
{{/hasAppPasswords}}</tbody>
</table>
{{#canCreateAppPassword}}
<h3>Create an app password</h3>
<form method="post" action="/account/settings/app-passwords" id="create-app-password-form">
<input type="hidden" name="csrf" value="{{csrf}}">
<label for="new-app-password-label">Name (for example “Phone mail” or “Thunderbird at home”)</label>
<input type="text" id="new-app-password-label" name="label" maxlength="64" value="{{labelEntered}}" required>
<fieldset class="services-choice">
<legend>It may be used for</legend>
<label class="check" for="service-imap"><input type="checkbox" id="service-imap" name="services" value="imap"{{#serviceIMAP}} checked{{/serviceIMAP}}> IMAP (read mail)</label>
<label class="check" for="service-pop3"><input type="checkbox" id="service-pop3" name="services" value="pop3"{{#servicePOP}} checked{{/servicePOP}}> POP (download mail)</label>
<label class="check" for="service-smtp"><input type="checkbox" id="service-smtp" name="services" value="smtp"{{#serviceSMTP}} checked{{/serviceSMTP}}> SMTP (send mail)</label>
</fieldset>
<button type="submit" id="create-app-password">Create app password</button>
</form>
{{/canCreateAppPassword}}
{{^canCreateAppPassword}}{{^twoStepUnavailable}}<p class="fine">App passwords exist once two-step verification is on; until then mail apps use your normal password.</p>{{/twoStepUnavailable}}{{/canCreateAppPassword}}
</section>

<section class="card{{#hasBackupCodes}} no-print{{/hasBackupCodes}}" id="devices-card" aria-labelledby="devices-title">
<h2 id="devices-title">Remembered devices</h2>
<p>Devices where you chose “Remember this device” skip the code at sign-in. Forget any you no longer use or do not recognise.</p>
<table id="devices" class="stack">
<thead><tr><th scope="col">Device</th><th scope="col">Remembered</th><th scope="col">Last used</th><th scope="col" aria-label="Actions"></th></tr></thead>
<tbody>
{{#devices}}<tr data-id="{{id}}">
<td class="device" title="{{userAgent}}">{{device}}</td>
<td class="created"><time datetime="{{createdISO}}">{{created}}</time></td>
<td class="last-used">{{lastUsed}}</td>
<td class="actions"><form method="post" action="/account/settings/devices/{{id}}/forget"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="danger small forget" aria-label="Forget {{device}}">Forget</button></form></td>
</tr>
{{/devices}}{{^hasDevices}}<tr class="empty"><td colspan="4" class="fine" id="no-devices">No devices are remembered.</td></tr>
{{/hasDevices}}</tbody>
</table>
{{#hasDevices}}
<form method="post" action="/account/settings/devices/forget-all">
<input type="hidden" name="csrf" value="{{csrf}}">
<button type="submit" class="danger" id="forget-all-devices">Forget all devices</button>
</form>
{{/hasDevices}}
</section>

<section class="card{{#hasBackupCodes}} no-print{{/hasBackupCodes}}" id="sessions-card" aria-labelledby="sessions-title">
<h2 id="sessions-title">Where you are signed in</h2>
<table id="sessions" class="stack">
<thead><tr><th scope="col">Device</th><th scope="col">Signed in</th><th scope="col">How</th><th scope="col">Address</th><th scope="col" aria-label="Actions"></th></tr></thead>
<tbody>
{{#sessions}}<tr data-id="{{id}}"{{#isCurrent}} class="current"{{/isCurrent}}>
<td class="device" title="{{userAgent}}">{{device}}{{#isCurrent}} <strong class="this-device">(This device)</strong>{{/isCurrent}}</td>
<td class="created"><time datetime="{{createdISO}}">{{created}}</time></td>
<td class="how">{{how}}</td>
<td class="ip">{{ip}}</td>
<td class="actions">{{^isCurrent}}<form method="post" action="/account/settings/sessions/{{id}}/sign-out"><input type="hidden" name="csrf" value="{{csrf}}"><button type="submit" class="danger small sign-out-session" aria-label="Sign out {{device}}">Sign out</button></form>{{/isCurrent}}</td>
</tr>
{{/sessions}}</tbody>
</table>
{{#hasOtherSessions}}
<form method="post" action="/account/settings/sessions/sign-out-others">
<input type="hidden" name="csrf" value="{{csrf}}">
<button type="submit" class="danger" id="sign-out-others">Sign out everywhere else</button>
</form>
{{/hasOtherSessions}}
</section>

<section class="card{{#hasBackupCodes}} no-print{{/hasBackupCodes}}" id="events-card" aria-labelledby="events-title">
<h2 id="events-title">Recent security events</h2>
{{#hasEvents}}
<ul id="events" class="events">
{{#events}}<li data-type="{{type}}"><span class="what">{{words}}</span><br><span class="fine"><time datetime="{{atISO}}">{{at}}</time>{{#hasIP}} · from {{ip}}{{/hasIP}}</span></li>
{{/events}}</ul>
{{/hasEvents}}
{{^hasEvents}}<ul id="events" class="events"></ul><p class="fine">Nothing yet.</p>{{/hasEvents}}
</section>

<section class="card{{#hasBackupCodes}} no-print{{/hasBackupCodes}}">
<form method="post" action="/account/sign-out">
<input type="hidden" name="csrf" value="{{csrf}}">
<button type="submit" class="secondary" id="sign-out">Sign out</button>
</form>
</section>
{{/content}}{{/layout}}
"""#
}
