#!/usr/bin/env bash
# Regenerates Sources/KilnONNX/Generated/onnx.pb.swift from the onnx.proto that the `onnx` PyPI wheel ships.
# Needs: protoc (apt-get install protobuf-compiler) and protoc-gen-swift built from swift-protobuf 1.39.0:
#   git clone https://github.com/apple/swift-protobuf && cd swift-protobuf && git checkout 1.39.0 \
#     && swift build -c release --product protoc-gen-swift
# Usage: tools/generate_onnx_proto.sh PATH/TO/protoc-gen-swift [PATH/TO/python-with-onnx]
set -euo pipefail
plugin=${1:?usage: $0 PATH/TO/protoc-gen-swift [python]}
python=${2:-python3}
root=$(cd "$(dirname "$0")/.." && pwd)
proto_dir=$("$python" -c 'import onnx, os; print(os.path.dirname(onnx.__file__))')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$proto_dir/onnx.proto" "$work/onnx.proto"
protoc --plugin=protoc-gen-swift="$plugin" --swift_opt=Visibility=Public \
  --swift_out="$work" -I "$work" "$work/onnx.proto"
mkdir -p "$root/Sources/KilnONNX/Generated"
cp "$work/onnx.pb.swift" "$root/Sources/KilnONNX/Generated/onnx.pb.swift"
echo "wrote Sources/KilnONNX/Generated/onnx.pb.swift from onnx $("$python" -c 'import onnx; print(onnx.__version__)')"
