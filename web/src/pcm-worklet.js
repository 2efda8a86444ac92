// AudioWorklet: the microphone's samples -> 16-bit PCM at the target rate (16 kHz), mono, posted to the page
// in frames of 100 ms. The page asks for a 16 kHz AudioContext (the browser resamples the microphone); when a
// browser refuses that rate, this resamples by linear interpolation.
class Pcm16Processor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    this.target = options.processorOptions?.targetRate || 16000;
    this.step = sampleRate / this.target;
    this.pos = 0;
    this.prev = 0;
    this.size = Math.round(this.target / 10);
    this.frame = new Int16Array(this.size);
    this.filled = 0;
  }

  push(sample) {
    const s = Math.max(-1, Math.min(1, sample));
    this.frame[this.filled++] = s < 0 ? s * 0x8000 : s * 0x7fff;
    if (this.filled === this.size) {
      const out = this.frame;
      this.frame = new Int16Array(this.size);
      this.filled = 0;
      this.port.postMessage(out.buffer, [out.buffer]);
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0) return true;
    const channel = input[0];
    if (this.step === 1) {
      for (let i = 0; i < channel.length; i++) this.push(channel[i]);
      return true;
    }
    // linear interpolation between the previous sample and this block
    while (this.pos < channel.length) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = i === 0 ? this.prev : channel[i - 1];
      const b = channel[i];
      this.push(a + (b - a) * frac);
      this.pos += this.step;
    }
    this.pos -= channel.length;
    this.prev = channel[channel.length - 1];
    return true;
  }
}

registerProcessor("pcm16", Pcm16Processor);
