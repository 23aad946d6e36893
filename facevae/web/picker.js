// Choosing a photo in the page: a file, a drop, a paste, a camera snapshot or one of the app's
// examples. Each gives a Blob to `take`; nothing is sent anywhere.

export function mountPicker(element, take, { paste = false } = {}) {
  const input = element.querySelector('input[type=file]');
  input.addEventListener('change', () => take(input.files[0]));
  // choosing the same file again (another face of it, or a retry) must fire 'change' too
  input.addEventListener('click', () => { input.value = ''; });
  element.addEventListener('dragover', (event) => event.preventDefault());
  element.addEventListener('drop', (event) => {
    event.preventDefault();
    take(event.dataTransfer.files[0]);
  });
  if (paste) {
    document.addEventListener('paste', (event) => {
      const file = [...event.clipboardData.files].find((f) => f.type.startsWith('image/'));
      if (file && element.offsetParent !== null) take(file);  // only the tab in view takes it
    });
  }
  element.querySelectorAll('.example').forEach((example) => example.addEventListener('click', async () => {
    take(await (await fetch(example.src)).blob());  // the app's own example: fetched, not sent
  }));
  const camera = element.querySelector('.camera');
  if (camera) mountSnapshot(element, camera, take);
}

function mountSnapshot(element, open, take) {
  // "Camera": a snapshot of the webcam, taken in the page like a chosen file
  const shoot = element.querySelector('.snapshot'), video = element.querySelector('.camera-view');
  open.addEventListener('click', async () => {
    try {
      video.srcObject = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    } catch (error) {
      element.querySelector('.photo-note').textContent = `The camera did not start: ${error.message ?? error}`;
      return;
    }
    video.hidden = shoot.hidden = false;
    await video.play();
  });
  shoot.addEventListener('click', () => {
    const canvas = document.createElement('canvas');
    canvas.width = video.videoWidth;
    canvas.height = video.videoHeight;
    canvas.getContext('2d').drawImage(video, 0, 0);
    video.srcObject.getTracks().forEach((track) => track.stop());
    video.hidden = shoot.hidden = true;
    canvas.toBlob(take, 'image/png');
  });
}

export function dataUrl(blob) {
  // the photo as the server's fallback functions take it
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(blob);
  });
}
