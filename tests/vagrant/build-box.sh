#!/bin/bash
# Build the CI Vagrant box (provider libvirt, QEMU TCG) that stands in for debian/bookworm64:
# a Debian bookworm tree made with mmdebstrap, turned into a qcow2 disk and a .box file.
# Nothing is downloaded from Vagrant Cloud (unreachable here); every package comes from the
# Debian mirror this machine already uses.
#
# Usage (as root):  tests/vagrant/build-box.sh OUT_DIR
#   Writes OUT_DIR/{bookworm64.box, vmlinuz, initrd.img} and prints the .box path last.
#   The kernel and initrd stay next to the box: the box's own Vagrantfile boots them
#   directly (libvirt.kernel/initrd, no boot loader), so OUT_DIR must stay where it is.
# Env:   MIRROR, SECURITY_MIRROR (required; tests/vagrant/run.sh passes them)
#
# Besides what the package needs at run time (iptables, iproute2, adduser; curl, procps,
# logrotate for the checks), the box carries the test peers of packaging/test-installed.sh,
# because the VM has no network to fetch them at test time:
#   awscli (2.9.19, Debian), python3-boto3 (1.26, Debian; brings python3-botocore),
#   cloud-init (22.4, Debian; disabled at boot with /etc/cloud/cloud-init.disabled, the test
#   runs it by hand against our IMDS with its own state directories);
#   docker.io (20.10, Debian) for tests/vagrant/containers.sh, whose image is made in the box
#   (`docker import` of a few directories; the box's /usr is mounted into the containers);
#   nodejs (18, Debian) for tests/vagrant/workloads.sh's JavaScript peer (its npm packages
#   come from the host, tests/peers/build.sh).
set -euo pipefail
OUT=${1:?usage: build-box.sh OUT_DIR}
: "${MIRROR:?set MIRROR}" "${SECURITY_MIRROR:?set SECURITY_MIRROR}"
SUITE=bookworm
BOX_PKGS=$(tr '\n' ',' <<'EOF' | sed 's/,$//'
linux-image-amd64
initramfs-tools
systemd
systemd-sysv
udev
dbus
openssh-server
sudo
rsync
curl
ca-certificates
iptables
iproute2
procps
logrotate
adduser
less
awscli
python3-boto3
cloud-init
docker.io
nodejs
EOF
)
KEYS=(/usr/share/rubygems-integration/all/gems/vagrant-*/keys/vagrant.pub)
KEY_PUB=${KEYS[0]}
[ -s "$KEY_PUB" ] || { echo "build-box.sh: vagrant's insecure public key not found (install vagrant)" >&2; exit 2; }

mkdir -p "$OUT"
OUT=$(realpath "$OUT")
TMP=$(mktemp -d "$OUT/.build.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
ROOT=$TMP/rootfs

# The tree. customize hooks run on the host with the tree as $1 (chroot where needed).
mmdebstrap -q --variant=minbase --include="$BOX_PKGS" \
    --aptopt='APT::Install-Recommends "false"' \
    --customize-hook='echo bookworm > "$1/etc/hostname"' \
    --customize-hook='printf "127.0.0.1\tlocalhost\n127.0.1.1\tbookworm\n::1\tlocalhost ip6-localhost ip6-loopback\n" > "$1/etc/hosts"' \
    --customize-hook='rm -f "$1/etc/resolv.conf"' \
    --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
    --customize-hook='printf "[Match]\nName=eth0\n\n[Network]\nDHCP=ipv4\n" > "$1/etc/systemd/network/99-vagrant-mgmt-eth0.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd.service >/dev/null 2>&1' \
    --customize-hook='chroot "$1" systemctl mask systemd-firstboot.service systemd-networkd-wait-online.service >/dev/null 2>&1' \
    --customize-hook='touch "$1/etc/cloud/cloud-init.disabled"' \
    --customize-hook='chroot "$1" useradd -m -s /bin/bash -G sudo vagrant' \
    --customize-hook='echo "vagrant ALL=(ALL) NOPASSWD: ALL" > "$1/etc/sudoers.d/vagrant" && chmod 0440 "$1/etc/sudoers.d/vagrant"' \
    --customize-hook="install -d -m 0700 \"\$1/home/vagrant/.ssh\" && install -m 0600 '$KEY_PUB' \"\$1/home/vagrant/.ssh/authorized_keys\"" \
    --customize-hook='chroot "$1" chown -R vagrant:vagrant /home/vagrant/.ssh' \
    --customize-hook='printf "UseDNS no\n" > "$1/etc/ssh/sshd_config.d/vagrant.conf"' \
    --customize-hook='rm -f "$1"/var/cache/apt/archives/*.deb' \
    "$SUITE" "$ROOT" \
    "deb $MIRROR $SUITE main" "deb $SECURITY_MIRROR $SUITE-security main" </dev/null

cp -L "$ROOT"/boot/vmlinuz-*-amd64 "$TMP/vmlinuz"
cp -L "$ROOT"/boot/initrd.img-*-amd64 "$TMP/initrd.img"
chmod 0644 "$TMP/vmlinuz" "$TMP/initrd.img"

# Disk: ext4 built straight from the tree (no loop mount), then sparse qcow2.
mkfs.ext4 -q -d "$ROOT" -L root "$TMP/box.img" 4G
mkdir "$TMP/box"
qemu-img convert -O qcow2 "$TMP/box.img" "$TMP/box/box.img"
rm -f "$TMP/box.img"
rm -rf "$ROOT"
printf '{"provider":"libvirt","format":"qcow2","virtual_size":4}\n' > "$TMP/box/metadata.json"
# CI-only provider settings live in the box, so the project's Vagrantfile stays portable.
# No lv.serial here: vagrant-libvirt 0.11.2 fails to merge it with a :libvirt block in the
# project's Vagrantfile.
cat > "$TMP/box/Vagrantfile" <<EOF
# Embedded Vagrantfile of the fake-metadata CI box (QEMU TCG, direct kernel boot).
Vagrant.configure("2") do |config|
  config.vm.guest = :debian
  # A throw-away CI machine: keep Vagrant's insecure key (replacing it costs ~14 s of TCG).
  config.ssh.insert_key = false
  config.vm.provider :libvirt do |lv|
    lv.driver = "qemu"
    lv.cpus = 2
    lv.memory = 1024
    lv.kernel = "$OUT/vmlinuz"
    lv.initrd = "$OUT/initrd.img"
    lv.cmd_line = "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet"
  end
end
EOF
tar -C "$TMP/box" --zstd -cf "$TMP/bookworm64.box" metadata.json Vagrantfile box.img
mv "$TMP/vmlinuz" "$TMP/initrd.img" "$OUT/"
mv "$TMP/bookworm64.box" "$OUT/bookworm64.box"
echo "$OUT/bookworm64.box"
