import HTTPTypes
import Hummingbird
import NIOCore

/// The style sheet and the small scripts, served from the binary. Script only where a browser
/// API needs it: the clipboard (copy an app password), printing (backup codes) and WebAuthn
/// (passkeys).
enum Assets {
    /// Copies the text of the element named by a button's `data-copy` (an element id).
    static let copyScript = #"""
document.querySelectorAll('[data-copy]').forEach(function (button) {
  button.addEventListener('click', function () {
    var source = document.getElementById(button.getAttribute('data-copy'));
    if (!source || !navigator.clipboard) { return; }
    navigator.clipboard.writeText(source.textContent.replace(/\s+/g, '')).then(function () {
      button.textContent = 'Copied';
    });
  });
});
"""#

    /// Prints the page from a `data-print` button.
    static let printScript = #"""
document.querySelectorAll('[data-print]').forEach(function (button) {
  button.addEventListener('click', function () { window.print(); });
});
"""#

    /// Passkeys, on the settings page (`#add-passkey-form`) and at the second step
    /// (`#use-passkey` with `#passkey-form`): posts the form's `csrf` field to the form's
    /// `data-options` address, which answers `{"public_key": …}` (WebAuthn's JSON form, binary
    /// members base64url) or `{"error", "code"}`; hands the options to
    /// `navigator.credentials.create()` or `.get()`; puts the browser's answer, base64url, in the
    /// form's hidden fields and submits the form, whose post the page checks. A browser without
    /// WebAuthn, a closed prompt or a refusal is said in `#passkey-status` and changes nothing.
    static let passkeyScript = #"""
(function () {
  'use strict';
  var status = document.getElementById('passkey-status');

  function say(text) {
    if (status) { status.textContent = text; }
  }

  function supported(kind) {
    return typeof window.PublicKeyCredential === 'function' && !!navigator.credentials &&
      typeof navigator.credentials[kind] === 'function' && typeof window.fetch === 'function';
  }

  function decode(text) {
    var base64 = String(text).replace(/-/g, '+').replace(/_/g, '/');
    while (base64.length % 4) { base64 += '='; }
    var binary = atob(base64), bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes.buffer;
  }

  function encode(buffer) {
    var bytes = new Uint8Array(buffer), binary = '';
    for (var i = 0; i < bytes.length; i++) { binary += String.fromCharCode(bytes[i]); }
    return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function descriptors(list) {
    return (list || []).map(function (item) { return { type: item.type, id: decode(item.id) }; });
  }

  // A refusal the page explained: its words are shown as they are.
  function Refusal(message) { this.message = message; }

  function options(form) {
    var body = new URLSearchParams();
    body.append('csrf', form.elements.csrf.value);
    return fetch(form.getAttribute('data-options'), {
      method: 'POST', body: body, credentials: 'same-origin', headers: { 'Accept': 'application/json' }
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (answer) {
        if (!response.ok || !answer.public_key) {
          throw new Refusal(answer.error || 'Something went wrong on our side. Reload the page and try again.');
        }
        return answer.public_key;
      });
    });
  }

  function explain(error) {
    if (error instanceof Refusal) { return error.message; }
    switch (error && error.name) {
      case 'NotAllowedError':
      case 'AbortError':
        return 'The passkey prompt was closed or timed out. Nothing was changed.';
      case 'InvalidStateError':
        return 'This device already holds a passkey for this account. Nothing was changed.';
      case 'SecurityError':
        return 'Passkeys do not work at this web address. Nothing was changed.';
      case 'NotSupportedError':
        return 'This device cannot make a passkey of a kind this site accepts. Nothing was changed.';
      case 'TypeError':
        return 'The server could not be reached. Check your connection and try again.';
    }
    return 'The passkey could not be used (' + ((error && error.name) || 'unknown error') + '). Nothing was changed.';
  }

  function submit(form) { HTMLFormElement.prototype.submit.call(form); }

  var add = document.getElementById('add-passkey-form');
  if (add) {
    add.addEventListener('submit', function (event) {
      event.preventDefault();
      var button = document.getElementById('add-passkey');
      if (!supported('create')) {
        say('This browser cannot create passkeys here. Try an up-to-date browser; your codes keep working.');
        return;
      }
      var name = document.getElementById('passkey-name');
      if (name && !name.value.trim()) {
        say('Enter a name for the passkey first.');
        return;
      }
      button.disabled = true;
      say('Follow your browser’s prompt to create the passkey…');
      options(add).then(function (publicKey) {
        publicKey.challenge = decode(publicKey.challenge);
        publicKey.user.id = decode(publicKey.user.id);
        publicKey.excludeCredentials = descriptors(publicKey.excludeCredentials);
        return navigator.credentials.create({ publicKey: publicKey });
      }).then(function (credential) {
        if (!credential) { throw new Refusal('The browser made no passkey. Nothing was changed.'); }
        add.elements.client_data_json.value = encode(credential.response.clientDataJSON);
        add.elements.attestation_object.value = encode(credential.response.attestationObject);
        say('Saving the passkey…');
        submit(add);
      }).catch(function (error) {
        button.disabled = false;
        say(explain(error));
      });
    });
  }

  var use = document.getElementById('use-passkey'), signIn = document.getElementById('passkey-form');
  if (use && signIn) {
    use.addEventListener('click', function () {
      if (!supported('get')) {
        say('This browser cannot use passkeys here. Enter a code instead.');
        return;
      }
      use.disabled = true;
      say('Follow your browser’s prompt to use your passkey…');
      options(signIn).then(function (publicKey) {
        publicKey.challenge = decode(publicKey.challenge);
        publicKey.allowCredentials = descriptors(publicKey.allowCredentials);
        return navigator.credentials.get({ publicKey: publicKey });
      }).then(function (credential) {
        if (!credential) { throw new Refusal('The browser used no passkey. Nothing was changed.'); }
        var fields = signIn.elements, remember = document.getElementById('remember');
        fields.credential_id.value = encode(credential.rawId);
        fields.client_data_json.value = encode(credential.response.clientDataJSON);
        fields.authenticator_data.value = encode(credential.response.authenticatorData);
        fields.signature.value = encode(credential.response.signature);
        fields.remember.value = remember && remember.checked ? '1' : '';
        say('Signing in…');
        submit(signIn);
      }).catch(function (error) {
        use.disabled = false;
        say(explain(error));
      });
    });
  }
}());
"""#

    static func response(_ name: Substring) -> Response? {
        let (type, text): (String, String)
        switch name {
        case "gatehouse.css": (type, text) = ("text/css; charset=utf-8", Layout.css)
        case "copy.js": (type, text) = ("text/javascript; charset=utf-8", copyScript)
        case "print.js": (type, text) = ("text/javascript; charset=utf-8", printScript)
        case "passkey.js": (type, text) = ("text/javascript; charset=utf-8", passkeyScript)
        default: return nil
        }
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "public, max-age=3600"
        headers[HTTPField.Name("X-Content-Type-Options")!] = "nosniff"
        return Response(status: .ok, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
