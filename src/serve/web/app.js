// fxscreen web app: upload, progress, result with overlay and opacity slider.
// Plain browser JavaScript, no framework or CDN (it runs on isolated networks).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  let last = null; // the last result JSON
  let pendingFile = null; // an upload waiting for sign-in
  const urls = []; // blob: URLs of the images shown, revoked when replaced

  // Sign-in (servers started with --auth): the token lives in this tab only.
  const token = () => sessionStorage.getItem('fxscreen-token');
  function authHeaders() {
    const t = token();
    return t ? { Authorization: 'Bearer ' + t } : {};
  }
  function showSignedIn() {
    const t = token();
    $('who').hidden = !t;
    $('who-name').textContent = t ? 'Signed in.' : '';
  }
  function askSignIn(message) {
    $('signin').hidden = false;
    setStatus(message || 'Sign in to screen images.', true);
    $('token').focus();
  }
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem('fxscreen-token', $('token').value.trim());
    $('token').value = '';
    $('signin').hidden = true;
    showSignedIn();
    setStatus('Signed in.');
    if (pendingFile) { const f = pendingFile; pendingFile = null; upload(f); }
  });
  $('signout').addEventListener('click', () => {
    sessionStorage.removeItem('fxscreen-token');
    last = null;
    $('result').hidden = true;
    showSignedIn();
    setStatus('Signed out.');
  });

  // Result images need the token too: fetched, then shown from blob: URLs.
  async function loadImage(url) {
    const r = await fetch(url, { headers: authHeaders() });
    if (!r.ok) throw new Error('HTTP ' + r.status);
    const u = URL.createObjectURL(await r.blob());
    urls.push(u);
    return u;
  }

  function setStatus(text, isError) {
    $('status').textContent = text;
    $('status').classList.toggle('error', !!isError);
  }

  function pct(v) { return (100 * v).toFixed(1) + '%'; }

  function show(r) {
    last = r;
    const positive = r.probability >= r.threshold;
    const p = $('prediction');
    p.textContent = positive ? 'Fracture suspected (' + r.prediction + ')' : 'No fracture found (' + r.prediction + ')';
    p.className = 'prediction ' + (positive ? 'positive' : 'negative');
    $('confidence').textContent = 'Confidence ' + pct(r.confidence) + ' · probability of fracture ' +
      r.probability.toFixed(3) + ' (threshold ' + r.threshold + ')';
    $('details').textContent = 'Image ' + r.image.width + ' × ' + r.image.height + ', ' + r.image.bits + '-bit · ' +
      r.cam_method + ' on ' + r.cam_layer;
    $('notice').textContent = r.notice + ' A screening aid, not a diagnosis.';
    while (urls.length) URL.revokeObjectURL(urls.pop());
    Promise.all([loadImage(r.image_url), loadImage(r.visualization_url)]).then(([im, ov]) => {
      $('original').src = im;
      $('under').src = im;
      $('overlay').src = ov;
      $('dl-overlay').href = ov;
    }).catch((e) => setStatus('Could not load the images: ' + e.message, true));
    $('dl-overlay').setAttribute('download', 'fxscreen-' + r.id.slice(0, 8) + '-overlay.png');
    const peak = $('peak');
    if (r.peak && r.peak[0] !== null) {
      peak.style.left = (100 * r.peak[0] / r.image.width) + '%';
      peak.style.top = (100 * r.peak[1] / r.image.height) + '%';
      peak.hidden = false;
      $('peak-text').textContent = '· peak at (' + Math.round(r.peak[0]) + ', ' + Math.round(r.peak[1]) + ') px';
    } else {
      peak.hidden = true;
      $('peak-text').textContent = '';
    }
    $('meta').textContent = 'Model ' + r.model.name + ' (SHA-256 ' + r.model.sha256.slice(0, 12) + '…) · ' +
      r.created + ' · ' + r.elapsed_ms + ' ms · result ' + r.id;
    $('result').hidden = false;
    setStatus('Done in ' + r.elapsed_ms + ' ms.');
    $('result-h').focus && $('result-h').setAttribute('tabindex', '-1');
    $('result-h').focus();
  }

  function upload(file) {
    if (!file) return;
    $('result').hidden = true;
    $('busy').hidden = false;
    $('progress').value = 0;
    $('progress-label').textContent = 'Uploading ' + file.name;
    setStatus('Uploading…');
    const form = new FormData();
    form.append('image', file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/predict');
    xhr.responseType = 'json';
    const h = authHeaders();
    if (h.Authorization) xhr.setRequestHeader('Authorization', h.Authorization);
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) $('progress').value = Math.round(100 * e.loaded / e.total);
    };
    xhr.upload.onload = () => {
      $('progress').removeAttribute('value'); // indeterminate while the model runs
      $('progress-label').textContent = 'Analysing';
      setStatus('Analysing…');
    };
    xhr.onload = () => {
      $('busy').hidden = true;
      const r = xhr.response;
      if (xhr.status === 200 && r) show(r);
      else if (xhr.status === 401) {
        sessionStorage.removeItem('fxscreen-token');
        showSignedIn();
        pendingFile = file;
        askSignIn(token() ? 'Your token was not accepted; sign in again.' : 'Sign in to screen images.');
      } else setStatus('Could not screen ' + file.name + ': ' + (r && r.detail ? r.detail : 'HTTP ' + xhr.status), true);
    };
    xhr.onerror = () => {
      $('busy').hidden = true;
      setStatus('Network error: the server did not answer.', true);
    };
    xhr.send(form);
  }

  $('file').addEventListener('change', (e) => upload(e.target.files[0]));
  $('camera').addEventListener('change', (e) => upload(e.target.files[0]));
  const drop = $('drop');
  drop.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); $('file').click(); }
  });
  ['dragenter', 'dragover'].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.add('over');
  }));
  ['dragleave', 'drop'].forEach((t) => drop.addEventListener(t, (e) => {
    e.preventDefault(); drop.classList.remove('over');
  }));
  drop.addEventListener('drop', (e) => upload(e.dataTransfer.files[0]));

  const slider = $('opacity');
  slider.addEventListener('input', () => {
    $('overlay').style.opacity = slider.value / 100;
    $('opacity-out').textContent = slider.value + '%';
    slider.setAttribute('aria-valuetext', slider.value + '%');
  });
  $('dl-json').addEventListener('click', () => {
    if (!last) return;
    const blob = new Blob([JSON.stringify(last, null, 2)], { type: 'application/json' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = 'fxscreen-' + last.id.slice(0, 8) + '.json';
    document.body.appendChild(a);
    a.click();
    setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 0);
  });
  $('print').addEventListener('click', () => window.print());
  $('again').addEventListener('click', () => {
    $('result').hidden = true;
    $('file').value = '';
    $('camera').value = '';
    setStatus('');
    drop.focus();
  });
  showSignedIn();
})();
