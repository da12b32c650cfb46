#!/bin/bash -e
# pi-gen, inside the image: the one install script (image-build/install.sh), the same that
# image-build/build-rootfs.sh runs in the tested root file systems. The packages came from
# 00-packages.
/tmp/kioskd-src/image-build/install.sh --appliance --no-apt
