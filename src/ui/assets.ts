// The console's stylesheet and script, embedded in the binary as strings (no asset files, no CDN). Served from
// /ui/assets with a content hash in the URL so they can be cached for good.

/**
 * Responsive without horizontal scroll: long values wrap at word boundaries (a word is broken only when it alone is
 * wider than its box: overflow-wrap break-word, and flex items may shrink below their longest word), tables become
 * stacked cards below 640 px.
 */
export const CSS = `
:root{--bg:#f6f7f9;--fg:#1d2430;--muted:#5d6878;--line:#d9dee5;--card:#fff;--accent:#2456c7;--chg:#fff4c2;--chg-line:#e2b100;
--del:#fde8e8;--add:#e5f6ea;--bad:#b42318;--ok:#16794a;font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
*{box-sizing:border-box}
html,body{margin:0;background:var(--bg);color:var(--fg);font-size:15px;line-height:1.45}
body{overflow-wrap:break-word}
.meta>*,.event header>*,.inline>*,.top nav>*{min-width:0}
a{color:var(--accent)}
code,.exact{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.86em}
.top{display:flex;flex-wrap:wrap;align-items:center;gap:.4rem 1.2rem;padding:.6rem 1rem;background:#17202e;color:#fff}
.top a{color:#dbe4f3;text-decoration:none}
.top .brand{font-weight:700;color:#fff;font-size:1.1rem}
.top nav{display:flex;flex-wrap:wrap;gap:.2rem .9rem;flex:1}
.top nav a[aria-current=page]{color:#fff;border-bottom:2px solid #7aa2ff}
.who{display:flex;gap:.5rem;align-items:center;margin:0;font-size:.9em}
main{max-width:1100px;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.2rem 0 .8rem}
h2{font-size:1.1rem;margin:1.2rem 0 .5rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:.8rem 1rem;margin:0 0 .9rem}
.inline{display:flex;flex-wrap:wrap;gap:.5rem;align-items:flex-end}
label{display:flex;flex-direction:column;font-size:.85em;color:var(--muted);gap:.15rem;min-width:0}
input,select,button{font:inherit;padding:.4rem .55rem;border:1px solid var(--line);border-radius:6px;background:#fff;color:var(--fg);max-width:100%}
button{background:var(--accent);color:#fff;border-color:var(--accent);cursor:pointer}
button.secondary{background:#fff;color:var(--accent)}
button.danger{background:var(--bad);border-color:var(--bad)}
button.link{background:none;border:none;color:#dbe4f3;text-decoration:underline;padding:0}
.muted,small{color:var(--muted)}
.problem{border:1px solid var(--bad);background:var(--del);border-radius:8px;padding:.6rem .9rem;margin:0 0 .9rem}
.problem p{margin:.2rem 0}
.notice{border:1px solid var(--ok);background:var(--add);border-radius:8px;padding:.6rem .9rem;margin:0 0 .9rem}
.event{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--accent);border-radius:8px;padding:.7rem .9rem;margin:0 0 .8rem}
.event.op-c{border-left-color:var(--ok)}.event.op-d{border-left-color:var(--bad)}
.event header{display:flex;flex-wrap:wrap;gap:.2rem .8rem;align-items:baseline}
.event .type{font-weight:700}
.meta{display:flex;flex-wrap:wrap;gap:.1rem 1rem;font-size:.9em;color:var(--muted);margin:.3rem 0}
.meta b{color:var(--fg);font-weight:600}
.badge{display:inline-block;border-radius:999px;padding:0 .5rem;font-size:.8em;background:#e8edf7;color:#243a66}
.badge.bad{background:var(--del);color:var(--bad)}
table{width:100%;border-collapse:collapse;margin:.3rem 0;table-layout:fixed}
th,td{text-align:left;vertical-align:top;padding:.3rem .45rem;border-bottom:1px solid var(--line)}
th{font-size:.8em;color:var(--muted);font-weight:600}
table.diff td:first-child,table.diff th:first-child{width:22%}
tr.changed{background:var(--chg)}
tr.changed td:first-child{box-shadow:inset 3px 0 0 var(--chg-line);font-weight:600}
tr.same td{color:var(--muted)}
td .before{background:var(--del);text-decoration:line-through;text-decoration-color:#c98080}
td .after{background:var(--add)}
.null{color:var(--muted);font-style:italic}
.masked{display:inline-block;background:#2b3443;color:#fff;border-radius:4px;padding:0 .4rem;font-size:.8em;letter-spacing:.03em}
.tx{font-size:.9em}
.pager{margin:.8rem 0}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:.8rem}
.metric h3{margin:0;font-size:.95rem}
.metric .now{font-size:1.5rem;font-weight:700}
.metric svg{display:block;width:100%;height:64px;background:#f1f4f9;border-radius:4px}
.metric polyline{fill:none;stroke:var(--accent);stroke-width:2}
.metric .none{color:var(--muted)}
table.diff td.nested,tr.changed td.nested{width:auto;padding:.2rem .3rem;font-weight:400}
.nested-field{font-weight:600}
tr.same .nested-field{font-weight:400}
table.diff.sub{margin:.1rem 0;font-size:.93em}
table.diff.sub td{padding:.15rem .35rem}
.list ul{list-style:none;margin:0;padding:0}
.list-path{font-weight:600;font-size:.85em;color:var(--muted);margin-top:.2rem}
li.item{border:1px solid var(--line);border-left-width:4px;border-radius:6px;padding:.25rem .45rem;margin:.25rem 0;background:var(--card)}
li.item.added{border-left-color:var(--ok)}li.item.removed{border-left-color:var(--bad)}li.item.changed{border-left-color:var(--chg-line)}
li.item.same{color:var(--muted)}
.item-key{font-weight:600}
.badge.added{background:var(--add);color:var(--ok)}.badge.removed{background:var(--del);color:var(--bad)}.badge.changed{background:var(--chg);color:#6b5200}
tr.added td,tr.removed td{background:none}
details summary{cursor:pointer;color:var(--muted);font-size:.9em}
pre{white-space:pre-wrap;word-break:break-word;background:#f1f4f9;padding:.5rem;border-radius:6px;font-size:.85em}
@media (max-width:640px){
  main{padding:.6rem}
  table.cards,table.cards tbody,table.cards tr,table.cards td{display:block;width:100%}
  table.cards thead{display:none}
  table.cards tr{border:1px solid var(--line);border-radius:8px;margin:0 0 .6rem;background:var(--card)}
  table.cards td{border:none;padding:.2rem .6rem}
  table.cards td::before{content:attr(data-label);display:block;font-size:.75em;color:var(--muted)}
  table.diff td:first-child,table.diff th:first-child{width:30%}
  table.diff.sub td:first-child{width:40%}
  .inline{flex-direction:column;align-items:stretch}
}
`

/** Progressive enhancement only: every page reads and works without it. */
export const SCRIPT = `
(function(){
  function rel(iso){
    var s=Math.round((Date.now()-Date.parse(iso))/1000),a=Math.abs(s),n,u;
    if(a<5)return'just now';
    if(a<60){n=a;u='second'}else if(a<3600){n=Math.floor(a/60);u='minute'}else if(a<86400){n=Math.floor(a/3600);u='hour'}else{n=Math.floor(a/86400);u='day'}
    var t=n+' '+u+(n===1?'':'s');return s>=0?t+' ago':'in '+t;
  }
  function tick(){
    document.querySelectorAll('time[data-relative]').forEach(function(el){
      el.textContent=rel(el.getAttribute('datetime'));
      el.title=new Date(el.getAttribute('datetime')).toLocaleString();
    });
  }
  document.addEventListener('submit',function(e){
    var msg=e.target.getAttribute('data-confirm');
    if(msg&&!window.confirm(msg))e.preventDefault();
  });
  function refresh(){
    var live=document.querySelector('[data-refresh]');
    if(!live)return;
    setTimeout(function(){
      fetch(location.href,{credentials:'same-origin'}).then(function(r){return r.ok?r.text():null}).then(function(html){
        if(!html)return;
        var next=new DOMParser().parseFromString(html,'text/html').getElementById('main');
        var main=document.getElementById('main');
        if(next&&main){main.replaceChildren.apply(main,Array.prototype.slice.call(next.childNodes));tick();}
      }).catch(function(){}).then(refresh);
    },Number(live.getAttribute('data-refresh'))||5000);
  }
  document.addEventListener('DOMContentLoaded',function(){tick();setInterval(tick,30000);refresh();});
})();
`

export const ASSET_VERSION = Bun.hash(CSS + SCRIPT).toString(36)
