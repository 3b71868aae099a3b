"""Baseline for bench:loader's GeoTIFF rows: GDAL (Debian's python3-gdal) decoding whole files as a Python pipeline
reads them (gdal.Open, ReadAsArray into float32, what mmssl's reader returns), one thread, its block cache emptied
before each read.

usage: geotiff.py DIR REPEATS
Writes the cases' files into DIR when missing (GeoTIFFs as remote-sensing archives hold them) and prints
{"gdal": VERSION, "cases": {NAME: {"file", "samples", "samplesPerSecond"}}}: the median of REPEATS reads.
"""
import json
import os
import sys
import time

import numpy as np
from osgeo import gdal

gdal.UseExceptions()
gdal.SetConfigOption('GDAL_NUM_THREADS', '1')
out, repeats = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
SIDE = 1024


def scene(bands, dtype, high):
    """Smooth fields plus noise, as imagery compresses: not random samples, which no codec shrinks."""
    y, x = np.mgrid[0:SIDE, 0:SIDE] / SIDE
    planes = [np.sin(6 * x + b) * np.cos(4 * y - b) * 0.4 + 0.5 + rng.normal(0, 0.02, (SIDE, SIDE)) for b in range(bands)]
    return (np.clip(np.stack(planes), 0, 1) * high).astype(dtype)


TILES = ['TILED=YES', 'BLOCKXSIZE=256', 'BLOCKYSIZE=256']
CASES = {
    'sentinel2_u16_deflate': (4, gdal.GDT_UInt16, np.uint16, 10000, ['COMPRESS=DEFLATE', 'PREDICTOR=2', *TILES]),
    'naip_u8_jpeg_ycbcr': (3, gdal.GDT_Byte, np.uint8, 255, ['COMPRESS=JPEG', 'PHOTOMETRIC=YCBCR', *TILES]),
    'naip_u8_webp': (4, gdal.GDT_Byte, np.uint8, 255, ['COMPRESS=WEBP', 'WEBP_LEVEL=80', *TILES]),
    'dem_f32_lerc_zstd': (1, gdal.GDT_Float32, np.float32, 3000, ['COMPRESS=LERC_ZSTD', 'MAX_Z_ERROR=0', *TILES]),
}

os.makedirs(out, exist_ok=True)
results = {}
for name, (bands, gdal_type, dtype, high, options) in CASES.items():
    path = os.path.join(out, f'{name}.tif')
    if not os.path.exists(path):
        ds = gdal.GetDriverByName('GTiff').Create(path + '.tmp', SIDE, SIDE, bands, gdal_type, options)
        ds.WriteArray(scene(bands, dtype, high))
        ds = None
        os.replace(path + '.tmp', path)
    times = []
    for _ in range(repeats):
        gdal.SetCacheMax(0)  # no block cached from the previous read
        gdal.SetCacheMax(64 * 2**20)
        start = time.perf_counter()
        ds = gdal.Open(path)
        ds.ReadAsArray(buf_type=gdal.GDT_Float32)
        ds = None
        times.append(time.perf_counter() - start)
    seconds = sorted(times)[len(times) // 2]
    results[name] = {'file': path, 'samples': bands * SIDE * SIDE, 'samplesPerSecond': bands * SIDE * SIDE / seconds}
print(json.dumps({'gdal': gdal.__version__, 'cases': results}))
