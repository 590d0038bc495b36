// fxscreen web app: upload, progress, result with overlay and opacity slider.
// Plain browser JavaScript, no framework or CDN (it runs on isolated networks).
'use strict';
(function () {
  const $ = (id) => document.getElementById(id);
  let last = null; // the last result JSON

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
    $('original').src = r.image_url;
    $('under').src = r.image_url;
    $('overlay').src = r.visualization_url;
    $('dl-overlay').href = r.visualization_url;
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
      else setStatus('Could not screen ' + file.name + ': ' + (r && r.detail ? r.detail : 'HTTP ' + xhr.status), true);
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
})();
