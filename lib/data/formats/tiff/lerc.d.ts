// The part of the `lerc` package (LERC 2 decoder, no types of its own) this reader uses.
declare module 'lerc' {
  interface LercResult {
    width: number;
    height: number;
    pixels: ArrayBufferView[];
    /** 1 for a valid pixel, 0 for an invalid one; null when every pixel is valid. */
    mask: Uint8Array | null;
  }
  const Lerc: { decode(buffer: ArrayBuffer, options?: { returnPixelInterleavedDims?: boolean }): LercResult };
  export default Lerc;
}
