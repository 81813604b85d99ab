import sys, zipfile, shutil, os
whl, drop = sys.argv[1], set(sys.argv[2:])
tmp = whl + ".tmp"
with zipfile.ZipFile(whl) as zin, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zout:
    names = zin.namelist()
    missing = drop - set(names)
    assert not missing, missing
    for info in zin.infolist():
        if info.filename in drop:
            continue
        data = zin.read(info.filename)
        if info.filename.endswith(".dist-info/RECORD") and info.filename.count("/") == 1:
            lines = data.decode().splitlines(keepends=True)
            kept = [l for l in lines if l.split(",")[0] not in drop]
            assert len(lines) - len(kept) == len(drop), (len(lines), len(kept))
            data = "".join(kept).encode()
        zout.writestr(info, data, compress_type=info.compress_type)
os.replace(tmp, whl)
print("stripped", whl, os.path.getsize(whl))
