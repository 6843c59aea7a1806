"""Patches and gallery on an S3 store (moto server on 127.0.0.1): same crops as on disk, cached reruns."""

from __future__ import annotations

import numpy as np

from neuroscribe import store as st
from neuroscribe.gallery import render_gallery
from neuroscribe.patches import PatchConfig, extract_patches, load_unit_patches


def test_patches_and_gallery_on_s3_match_local(tiny_run, s3_options):
    fs, _ = st.filesystem("s3://test", s3_options)
    fs.put(tiny_run, "test/tiny", recursive=True)
    remote = "s3://test/tiny"
    cfg = PatchConfig(crop_size=32, patches_per_unit=2)
    first = extract_patches(remote, "relu2", cfg, s3_options)
    assert not first["cached"] and extract_patches(remote, "relu2", cfg, s3_options)["cached"]
    extract_patches(tiny_run, "relu2", cfg)
    for unit in (0, 7, 15):
        here, there = load_unit_patches(tiny_run, "relu2", unit), load_unit_patches(remote, "relu2", unit, s3_options)
        assert [p.box for p in here] == [p.box for p in there]
        assert all(np.array_equal(np.asarray(a.crop), np.asarray(b.crop)) for a, b in zip(here, there))
    changed = extract_patches(remote, "relu2", cfg.model_copy(update={"crop_size": 40}), s3_options)
    assert not changed["cached"] and load_unit_patches(remote, "relu2", 0, s3_options)[0].crop.size == (40, 40)
    uri = render_gallery(remote, "relu2", storage_options=s3_options)
    assert uri == "s3://test/tiny/gallery/relu2.html"
    page = st.StoreFile(remote, "gallery/relu2.html", s3_options).read_bytes().decode()
    strips = st.StoreFile(remote, "gallery/relu2", s3_options).list()
    assert len(strips) == sum(bool(load_unit_patches(remote, "relu2", u, s3_options)) for u in range(16))
    assert all(name in page for name in strips)
