// Writes a Y4M video of a QR code, for Chromium's fake camera
// (--use-file-for-fake-video-capture): what a customer's phone screen shows the tablet.
//
//   node e2e/coupon-video.mjs TEXT OUT.y4m
//
// 640×480, 4:2:0, 5 identical frames at 5 fps (Chromium loops the file); the code is
// black on white with a four-module quiet zone, as large as the frame allows.
import { writeFileSync } from 'node:fs'
import QRCode from 'qrcode'

const [text, out] = process.argv.slice(2)
if (!text || !out) {
  console.error('usage: node e2e/coupon-video.mjs TEXT OUT.y4m')
  process.exit(64)
}
const W = 640
const H = 480
const qr = QRCode.create(text, { errorCorrectionLevel: 'L' })
const n = qr.modules.size
const quiet = 4
const scale = Math.floor(H / (n + 2 * quiet))
if (scale < 2) {
  console.error(`the code (${n} modules) does not fit ${W}×${H}`)
  process.exit(1)
}
const side = (n + 2 * quiet) * scale
const x0 = Math.floor((W - side) / 2)
const y0 = Math.floor((H - side) / 2)
const y = Buffer.alloc(W * H, 0xeb) // white (video range)
for (let r = 0; r < n; r++) {
  for (let c = 0; c < n; c++) {
    if (!qr.modules.get(r, c)) continue
    for (let dy = 0; dy < scale; dy++) {
      const row = y0 + (quiet + r) * scale + dy
      y.fill(0x10, row * W + x0 + (quiet + c) * scale, row * W + x0 + (quiet + c + 1) * scale) // black
    }
  }
}
const chroma = Buffer.alloc((W / 2) * (H / 2), 0x80)
const frame = Buffer.concat([Buffer.from('FRAME\n'), y, chroma, chroma])
const header = Buffer.from(`YUV4MPEG2 W${W} H${H} F5:1 Ip A1:1 C420jpeg\n`)
writeFileSync(out, Buffer.concat([header, frame, frame, frame, frame, frame]))
console.log(`${out}: ${n}×${n} modules, ${scale} px each`)
