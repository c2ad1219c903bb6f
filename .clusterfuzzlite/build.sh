#!/bin/bash -eu
# OSS-Fuzz / ClusterFuzzLite build: the sim library and the fuzz targets with the toolchain's
# CC/CXX/CXXFLAGS (clang, libc++, sanitizer and coverage flags) and $LIB_FUZZING_ENGINE; the
# plain tdxfuzz tool (same flags) encodes the seed corpora from the readable traces.
cmake -S "$SRC/tdxfuzz" -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DTDXFUZZ_TESTS=OFF \
  -DCMAKE_CXX_FLAGS="$CXXFLAGS" -DTDXFUZZ_FUZZING_ENGINE="$LIB_FUZZING_ENGINE"
cmake --build build --target kvm_ops module_ops trace_text tdxfuzz
"$SRC/tdxfuzz/scripts/seeds" build/tdxfuzz seeds
for t in kvm_ops module_ops trace_text; do
  cp "build/$t" "$OUT/"
  cp "$SRC/tdxfuzz/fuzz/$t.options" "$SRC/tdxfuzz/fuzz/$t.dict" "$OUT/"
  (cd "seeds/$t" && zip -q "$OUT/${t}_seed_corpus.zip" ./*)
done
