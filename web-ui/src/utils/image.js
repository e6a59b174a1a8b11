// Photos from a tablet camera can pass the box's 10 MB limit: shrink big ones first.

export const MAX_UPLOAD_BYTES = 10 * 1024 * 1024
const SHRINK_ABOVE = 4 * 1024 * 1024
const MAX_SIDE = 2400

/** Returns a Blob to upload: the file itself, or a JPEG at most MAX_SIDE px on its long side. */
export async function prepareImage(file) {
  if (file.size <= SHRINK_ABOVE || typeof createImageBitmap !== 'function') return file
  const bmp = await createImageBitmap(file)
  const scale = Math.min(1, MAX_SIDE / Math.max(bmp.width, bmp.height))
  const w = Math.round(bmp.width * scale)
  const h = Math.round(bmp.height * scale)
  const canvas = document.createElement('canvas')
  canvas.width = w
  canvas.height = h
  canvas.getContext('2d').drawImage(bmp, 0, 0, w, h)
  bmp.close && bmp.close()
  const blob = await new Promise((resolve) => canvas.toBlob(resolve, 'image/jpeg', 0.9))
  return blob || file
}
