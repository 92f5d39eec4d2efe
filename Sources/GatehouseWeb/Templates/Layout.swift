/// The frame every page shares, the plain message page, and the style sheet.
enum Layout {
    static let page = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · {{issuer}}</title>
<link rel="stylesheet" href="/account/assets/gatehouse.css">
</head>
<body>
<header class="bar">
  <span class="brand">{{issuer}}</span>
  {{#demo}}<span class="demo-tag" title="A stand-in webmail for trying Gatehouse">demo</span>{{/demo}}
  {{#signedInAs}}<span class="who">{{signedInAs}}</span>{{/signedInAs}}
</header>
<main class="{{#wide}}wide{{/wide}}{{^wide}}narrow{{/wide}}">
{{$content}}{{/content}}
</main>
{{#scripts}}<script src="/account/assets/{{.}}"></script>
{{/scripts}}
</body>
</html>
"""#

    static let message = #"""
{{<layout}}{{$content}}
<section class="card">
<h1>{{title}}</h1>
<p class="{{#isError}}error{{/isError}}{{^isError}}notice{{/isError}}" id="{{#isError}}error{{/isError}}{{^isError}}notice{{/isError}}" role="{{#isError}}alert{{/isError}}{{^isError}}status{{/isError}}" {{#code}}data-code="{{code}}"{{/code}}>{{message}}</p>
{{#code}}<p class="fine">Reference: <code>{{code}}</code></p>{{/code}}
{{#back}}<p><a class="button secondary" href="{{back}}" id="back">Go back</a></p>{{/back}}
</section>
{{/content}}{{/layout}}
"""#

    /// Plain CSS: a settings look like a modern mail provider's, readable at a phone's width.
    static let css = #"""
:root { --ink: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #f6f8fa; --accent: #0b57d0; --accent-ink: #fff;
  --danger: #b3261e; --ok: #146c2e; --radius: 10px; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font-size: 16px; line-height: 1.5; }
.bar { display: flex; align-items: center; gap: .75rem; padding: .75rem 1.25rem; background: #fff; border-bottom: 1px solid var(--line); }
.brand { font-weight: 650; font-size: 1.1rem; }
.demo-tag { background: #fff4ce; color: #6b4e00; border: 1px solid #e6c35c; border-radius: 999px; padding: 0 .6rem; font-size: .8rem; }
.who { margin-left: auto; color: var(--muted); font-size: .9rem; overflow-wrap: anywhere; }
main { margin: 2rem auto; padding: 0 1rem; }
main.narrow { max-width: 28rem; }
main.wide { max-width: 52rem; }
.card { background: #fff; border: 1px solid var(--line); border-radius: var(--radius); padding: 1.5rem; margin-bottom: 1.25rem; }
h1 { font-size: 1.5rem; margin: 0 0 .75rem; }
h2 { font-size: 1.15rem; margin: 0 0 .75rem; }
p { margin: .5rem 0; }
.lead { color: var(--muted); }
.fine { color: var(--muted); font-size: .85rem; }
label { display: block; font-weight: 550; margin: .9rem 0 .3rem; }
label.check { display: flex; gap: .5rem; align-items: center; font-weight: 400; }
input[type=text], input[type=email], input[type=password], input:not([type]), select {
  width: 100%; padding: .65rem .75rem; font-size: 1rem; border: 1px solid var(--line); border-radius: 8px; background: #fff; color: var(--ink); }
input:focus, button:focus, a:focus { outline: 3px solid #a8c7fa; outline-offset: 1px; }
input.code { font-size: 1.4rem; letter-spacing: .3rem; font-variant-numeric: tabular-nums; }
button, .button { display: inline-block; margin-top: 1rem; padding: .6rem 1.1rem; font-size: 1rem; border-radius: 999px; border: 1px solid var(--accent);
  background: var(--accent); color: var(--accent-ink); cursor: pointer; text-decoration: none; }
button.secondary, .button.secondary { background: #fff; color: var(--accent); }
button.danger { background: #fff; color: var(--danger); border-color: var(--danger); }
button.link { background: none; border: none; color: var(--accent); padding: 0; margin: 0; text-decoration: underline; font-size: .95rem; }
button.small { margin: 0; padding: .3rem .8rem; font-size: .9rem; }
button:disabled { opacity: .6; cursor: default; }
.passkey-choice button { margin-top: .25rem; }
#passkey-status:empty { margin: 0; }
p.or { margin-top: 1.25rem; }
.synced { display: inline-block; margin-left: .35rem; padding: 0 .5rem; border: 1px solid var(--line); border-radius: 999px; }
.row { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; }
.alternatives { margin-top: 1.25rem; display: flex; flex-direction: column; gap: .6rem; }
.error { background: #fce8e6; color: var(--danger); border-radius: 8px; padding: .6rem .8rem; }
.notice { background: #e6f4ea; color: var(--ok); border-radius: 8px; padding: .6rem .8rem; }
.status-on { color: var(--ok); font-weight: 600; }
.status-off { color: var(--muted); font-weight: 600; }
table { width: 100%; border-collapse: collapse; font-size: .95rem; }
th, td { text-align: left; padding: .55rem .4rem; border-bottom: 1px solid var(--line); vertical-align: middle; }
th { color: var(--muted); font-weight: 550; font-size: .85rem; }
td form { margin: 0; display: inline; }
.secret { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 1.05rem; letter-spacing: .05rem; overflow-wrap: anywhere; }
.codes { columns: 2; font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 1.05rem; padding-left: 1.2rem; }
.qr { display: block; width: 220px; height: 220px; margin: .75rem 0; background: #fff; }
.qr svg { width: 100%; height: 100%; }
.eye { vertical-align: -3px; }
ul.events { list-style: none; padding: 0; margin: 0; }
ul.events li { padding: .45rem 0; border-bottom: 1px solid var(--line); }
@media (max-width: 40rem) {
  main { margin: 1rem auto; }
  .card { padding: 1.1rem; }
  table.stack thead { display: none; }
  table.stack tr { display: block; border-bottom: 1px solid var(--line); padding: .4rem 0; }
  table.stack td { display: block; border: none; padding: .15rem 0; }
  .codes { columns: 1; }
}
@media print {
  .bar, .no-print, button, .button { display: none !important; }
  .card { border: none; }
}
"""#
}
