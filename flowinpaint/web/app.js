// flowinpaint demo page: paint a mask over a photo, send both to /api/inpaint, compare, download.
// Strokes are kept in image pixels, so the mask sent has the photo's own size whatever the zoom.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const photo = $('photo'), overlay = $('overlay'), result = $('result');
  const brush = $('brush'), compare = $('compare'), original = $('original');
  const state = { file: null, strokes: [], current: null, resultUrl: null, limits: null };

  function setState(name, message) {
    document.body.dataset.state = name;
    if (message !== undefined) $('status').textContent = message;
    const hasImage = state.file !== null;
    $('undo').disabled = !hasImage || state.strokes.length === 0;
    $('clear').disabled = !hasImage || state.strokes.length === 0;
    $('run').disabled = !hasImage || state.strokes.length === 0 || name === 'running';
    const done = name === 'done';
    compare.disabled = !done;
    original.disabled = !done;
    $('download').classList.toggle('disabled', !done);
    $('download').setAttribute('aria-disabled', String(!done));
  }

  fetch('/api/info').then((r) => r.json()).then((info) => {
    state.limits = info;
    $('model').textContent = `model: ${info.model}`;
  }).catch(() => {});

  // --- Loading a photo -------------------------------------------------------------------
  $('file').addEventListener('change', () => {
    const file = $('file').files[0];
    if (!file) return;
    if (state.limits && file.size > state.limits.max_upload_bytes) {
      setState('error', `The file is ${(file.size / 2 ** 20).toFixed(1)} MB; the server takes ` +
               `at most ${(state.limits.max_upload_bytes / 2 ** 20).toFixed(0)} MB.`);
      return;
    }
    const img = new Image();
    const url = URL.createObjectURL(file);
    img.onload = () => {
      // naturalWidth/Height already follow the EXIF orientation, as the server's decode does.
      for (const c of [photo, overlay]) {
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
      }
      photo.getContext('2d').drawImage(img, 0, 0);
      URL.revokeObjectURL(url);
      state.file = file;
      state.strokes = [];
      clearResult();
      redraw();
      setState('ready', `${file.name}: ${img.naturalWidth}x${img.naturalHeight}. Paint the hole.`);
    };
    img.onerror = () => setState('error', 'This file is not an image the browser can show.');
    img.src = url;
  });

  // --- Painting --------------------------------------------------------------------------
  function toImage(event) {
    const rect = overlay.getBoundingClientRect();
    return [(event.clientX - rect.left) * overlay.width / rect.width,
            (event.clientY - rect.top) * overlay.height / rect.height];
  }

  function brushPixels() {
    // The slider is in screen pixels; strokes are stored in image pixels.
    const rect = overlay.getBoundingClientRect();
    return Number(brush.value) * overlay.width / Math.max(rect.width, 1);
  }

  function drawStroke(ctx, stroke, color) {
    ctx.strokeStyle = color;
    ctx.fillStyle = color;
    ctx.lineWidth = stroke.size;
    ctx.lineCap = 'round';
    ctx.lineJoin = 'round';
    const [x0, y0] = stroke.points[0];
    ctx.beginPath();
    ctx.arc(x0, y0, stroke.size / 2, 0, 2 * Math.PI);
    ctx.fill();
    ctx.beginPath();
    ctx.moveTo(x0, y0);
    for (const [x, y] of stroke.points.slice(1)) ctx.lineTo(x, y);
    ctx.stroke();
  }

  function redraw() {
    const ctx = overlay.getContext('2d');
    ctx.clearRect(0, 0, overlay.width, overlay.height);
    for (const s of state.strokes) drawStroke(ctx, s, '#ff2a55');
  }

  overlay.addEventListener('pointerdown', (event) => {
    if (!state.file || document.body.dataset.state === 'running') return;
    overlay.setPointerCapture(event.pointerId);
    if (document.body.dataset.state === 'done') clearResult();
    state.current = { size: brushPixels(), points: [toImage(event)] };
    state.strokes.push(state.current);
    redraw();
    setState('ready');
  });
  overlay.addEventListener('pointermove', (event) => {
    if (!state.current) return;
    state.current.points.push(toImage(event));
    redraw();
  });
  const endStroke = () => { state.current = null; };
  overlay.addEventListener('pointerup', endStroke);
  overlay.addEventListener('pointercancel', endStroke);

  brush.addEventListener('input', () => { $('brush-value').textContent = brush.value; });
  function undo() {
    if (!state.strokes.length) return;
    state.strokes.pop();
    clearResult();
    redraw();
    setState('ready');
  }
  $('undo').addEventListener('click', undo);
  $('clear').addEventListener('click', () => {
    state.strokes = [];
    clearResult();
    redraw();
    setState('ready', 'Mask cleared.');
  });
  document.addEventListener('keydown', (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === 'z') { event.preventDefault(); undo(); }
    if (event.key === '[' || event.key === ']') {
      brush.value = String(Number(brush.value) + (event.key === ']' ? 5 : -5));
      $('brush-value').textContent = brush.value;
    }
  });

  // --- The mask sent to the server: white strokes on black, the photo's size --------------
  function maskCanvas() {
    const c = document.createElement('canvas');
    c.width = overlay.width;
    c.height = overlay.height;
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, c.width, c.height);
    for (const s of state.strokes) drawStroke(ctx, s, '#fff');
    return c;
  }

  // --- Running, comparing, downloading ---------------------------------------------------
  function clearResult() {
    if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
    state.resultUrl = null;
    result.hidden = true;
    result.removeAttribute('src');
    $('download').removeAttribute('href');
    compare.value = 100;
    original.checked = false;
  }

  function showCompare() {
    // The result covers the photo from the left up to the slider (100 = all result).
    const pct = original.checked ? 0 : Number(compare.value);
    result.style.clipPath = `inset(0 ${100 - pct}% 0 0)`;
  }
  compare.addEventListener('input', showCompare);
  original.addEventListener('change', showCompare);

  // A slow method (a per-photo fit) says how long it may take; the status counts the seconds.
  function workingMessage(seconds) {
    const limit = state.limits && state.limits.max_seconds;
    return `Inpainting... ${seconds} s` +
      (limit ? ` (this method fits a network to the photo: up to ${Math.round(limit)} s)` : '');
  }

  $('run').addEventListener('click', async () => {
    setState('running', workingMessage(0));
    const started = performance.now();
    const ticker = setInterval(() => {
      if (document.body.dataset.state === 'running') {
        $('status').textContent = workingMessage(Math.round((performance.now() - started) / 1000));
      }
    }, 1000);
    const maskBlob = await new Promise((resolve) => maskCanvas().toBlob(resolve, 'image/png'));
    const form = new FormData();
    form.append('image', state.file, 'image');
    form.append('mask', maskBlob, 'mask.png');
    const t0 = performance.now();
    try {
      const response = await fetch('/api/inpaint', { method: 'POST', body: form });
      if (!response.ok) {
        let message = `HTTP ${response.status}`;
        try { message = (await response.json()).error || message; } catch (e) { /* not JSON */ }
        setState('error', `The server refused: ${message}`);
        return;
      }
      const blob = await response.blob();
      clearResult();
      state.resultUrl = URL.createObjectURL(blob);
      await new Promise((resolve, reject) => {
        result.onload = resolve;
        result.onerror = reject;
        result.src = state.resultUrl;
      });
      result.hidden = false;
      showCompare();
      $('download').href = state.resultUrl;
      const base = state.file.name.replace(/\.[^.]*$/, '') || 'image';
      $('download').download = `${base}_inpainted.png`;
      const note = response.headers.get('X-Inpaint-Note');
      setState('done', `Done in ${((performance.now() - t0) / 1000).toFixed(1)} s` +
               (note ? ` (${note})` : '') + '. Drag the slider to compare; paint again to refine.');
    } catch (e) {
      setState('error', `Request failed: ${e}`);
    } finally {
      clearInterval(ticker);
    }
  });

  // For scripts and tests: the current mask as a PNG data URL.
  window.flowinpaint = { maskDataURL: () => maskCanvas().toDataURL('image/png') };
  setState('empty');
})();
