#!/bin/busybox sh
# /init of the kernel-client test VM (packed into the initramfs by initramfs.ts).
#
# Reads from the kernel command line:
#   tsnfs.port=P tsnfs.mountport=M tsnfs.export=/PATH   where the NFSv3 server is
#   tsnfs.addr=A            the server's address as the guest sees it (default 10.0.2.2)
#   tsnfs.timeout=S         guest watchdog in seconds (default 300)
#   tsnfs.files=N           entries in the big directory (default 5000)
# Prints one line per check, "STEP name ok [detail]" or "STEP name FAIL reason",
# then "TSNFS-KERNEL-RESULT PASS N steps" or "TSNFS-KERNEL-RESULT FAIL N steps"
# (N: how many STEP lines were printed), then powers off.

/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /tmp /mnt
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1

FAILED=0
STEPS=0

finish() {
	if [ "$FAILED" = 0 ] && [ "$STEPS" -gt 0 ]; then
		echo "TSNFS-KERNEL-RESULT PASS $STEPS steps"
	else
		echo "dmesg tail:"
		dmesg | tail -n 40 | sed 's/^/  dmesg: /'
		echo "TSNFS-KERNEL-RESULT FAIL $STEPS steps"
	fi
	# no sync: with a hung server it would never return
	sleep 0.3
	poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}

arg() {
	for w in $(cat /proc/cmdline); do
		case "$w" in
		"tsnfs.$1="*) echo "${w#*=}"; return 0 ;;
		esac
	done
	echo "$2"
}

# uptime in tenths of a second
now() { awk '{ printf "%d", $1 * 10 }' /proc/uptime; }

# step NAME FUNC: runs FUNC in this shell (state it sets is kept), output to a
# file; FUNC reports a failure by printing a reason and returning non-zero.
# Variables starting with _ belong to step: functions must not use them.
step() {
	_step=$1
	shift
	_t0=$(now)
	echo "$_step" >/tmp/current-step
	"$@" >/tmp/step.out 2>&1
	_rc=$?
	_dt=$(($(now) - _t0))
	STEPS=$((STEPS + 1))
	# detail: the last line on success, the last three on failure
	_detail=$(tail -n $((_rc == 0 ? 1 : 3)) /tmp/step.out | tr '\n' ' ' | sed 's/  */ /g; s/ $//')
	if [ $_rc = 0 ]; then
		echo "STEP $_step ok ${_detail:+$_detail }($((_dt / 10)).$((_dt % 10))s)"
	else
		FAILED=1
		echo "STEP $_step FAIL ${_detail:-exit $_rc} ($((_dt / 10)).$((_dt % 10))s)"
	fi
	return $_rc
}

# eq WHAT ACTUAL EXPECTED
eq() {
	if [ "$2" != "$3" ]; then
		echo "$1: got '$2', want '$3'"
		return 1
	fi
}

sum() { sha256sum <"$1" | cut -d' ' -f1; }

# dd without its statistics, but with its errors
ddq() { dd "$@" 2>/tmp/dd.err || { grep -v records /tmp/dd.err; return 1; }; }

PORT=$(arg port 2049)
MPORT=$(arg mountport "$PORT")
EXPORT=$(arg export /)
ADDR=$(arg addr 10.0.2.2)
TIMEOUT=$(arg timeout 300)
NFILES=$(arg files 5000)
OPTS="vers=3,proto=tcp,port=$PORT,mountport=$MPORT,mountproto=tcp,nolock,addr=$ADDR,mountaddr=$ADDR"

echo
echo "tsnfs guest: server $ADDR:$EXPORT nfs port $PORT mount port $MPORT, watchdog ${TIMEOUT}s, up $(cut -d" " -f1 /proc/uptime)s"

# Watchdog: a hung NFS call must still end the run with a verdict.
(
	sleep "$TIMEOUT"
	echo "STEP watchdog FAIL guest run exceeded ${TIMEOUT}s during step $(cat /tmp/current-step 2>/dev/null)"
	echo "TSNFS-KERNEL-RESULT FAIL"
	sleep 0.3
	poweroff -f
) &

do_modules() {
	for m in $(cat /etc/tsnfs-modules); do
		insmod "/lib/modules/$m" || { echo "insmod $m failed"; return 1; }
	done
	echo "$(wc -l </etc/tsnfs-modules) modules"
}

do_network() {
	ip link set lo up
	i=0
	while [ ! -e /sys/class/net/eth0 ]; do
		i=$((i + 1))
		[ $i -gt 50 ] && { echo "no eth0"; return 1; }
		sleep 0.1
	done
	ip link set eth0 up || return 1
	ip addr add 10.0.2.15/24 dev eth0 || return 1
	case "$ADDR" in
	10.0.2.*) ;;
	*) ip route add default via 10.0.2.2 || return 1 ;;
	esac
}

do_mount() {
	timeout 120 mount -t nfs -o "$OPTS" "$ADDR:$EXPORT" /mnt || { echo "mount -o $OPTS $ADDR:$EXPORT failed"; return 1; }
	grep ' /mnt ' /proc/mounts | cut -d' ' -f3,4
}

do_remount() {
	cd / || return 1
	sync
	umount /mnt || { echo "umount failed"; return 1; }
	do_mount >/dev/null || { echo "mount again failed"; return 1; }
}

# --- phase 1: data written, then read back after a remount -------------------

do_workdir() {
	W=/mnt/tsnfs-kernel-$(cut -c1-8 /proc/sys/kernel/random/uuid)
	mkdir "$W" || return 1
	echo "$W"
}

do_write() {
	# the expected contents first, in the guest's RAM
	echo "hello from the linux kernel nfs client" >/tmp/small
	: >/tmp/empty
	dd if=/dev/urandom of=/tmp/odd bs=4097 count=1 2>/dev/null
	dd if=/dev/urandom of=/tmp/big0 bs=1048576 count=6 2>/dev/null
	dd if=/dev/urandom of=/tmp/patch bs=1000 count=3 2>/dev/null
	cp /tmp/big0 /tmp/big
	dd if=/tmp/patch of=/tmp/big bs=1 seek=3000000 conv=notrunc 2>/dev/null
	printf 'line one\nline two\n' >/tmp/append
	: >/tmp/sums
	for f in small:small.txt empty:empty odd:odd.bin big:big.bin append:append.txt; do
		echo "$(sum /tmp/${f%%:*}) ${f#*:}" >>/tmp/sums
	done
	# then the same through the mount
	cp /tmp/small "$W/small.txt" || return 1
	: >"$W/empty" || return 1
	# a size just past a page boundary
	cp /tmp/odd "$W/odd.bin" || return 1
	# several MiB, then an overwrite in the middle without truncating
	ddq if=/tmp/big0 of="$W/big.bin" bs=1048576 || return 1
	ddq if=/tmp/patch of="$W/big.bin" bs=1 seek=3000000 conv=notrunc || return 1
	# append
	printf 'line one\n' >"$W/append.txt" || return 1
	printf 'line two\n' >>"$W/append.txt" || return 1
	eq "size of big.bin" "$(stat -c %s "$W/big.bin")" 6291456 || return 1
	echo "5 files, $(($(stat -c %s "$W/big.bin") / 1048576)) MiB"
}

do_readback() {
	while read -r want name; do
		got=$(sum "$W/$name") || return 1
		eq "sha256 of $name" "$got" "$want" || return 1
	done </tmp/sums
	eq "size of odd.bin" "$(stat -c %s "$W/odd.bin")" 4097 || return 1
	eq "size of empty" "$(stat -c %s "$W/empty")" 0 || return 1
	eq "files checked" "$(wc -l </tmp/sums)" 5 || return 1
	echo "5 checksums match"
}

# --- phase 2: namespace and attribute operations ------------------------------

do_mkdir() {
	mkdir -p "$W/d1/d2/d3" || return 1
	[ -d "$W/d1/d2/d3" ] || { echo "d1/d2/d3 missing"; return 1; }
	echo "inner file" >"$W/d1/d2/d3/inner.txt" || return 1
	mkdir "$W/d1" 2>/dev/null && { echo "mkdir of an existing dir succeeded"; return 1; }
	return 0
}

do_rename_file() {
	cp /tmp/odd "$W/r1" || return 1
	mv "$W/r1" "$W/r2" || return 1
	[ ! -e "$W/r1" ] || { echo "r1 still exists"; return 1; }
	eq "r2 contents" "$(sum "$W/r2")" "$(sum /tmp/odd)" || return 1
	# across directories
	mv "$W/r2" "$W/d1/d2/r3" || return 1
	eq "r3 contents" "$(sum "$W/d1/d2/r3")" "$(sum /tmp/odd)" || return 1
	# over an existing file
	echo "to be replaced" >"$W/victim" || return 1
	mv "$W/d1/d2/r3" "$W/victim" || return 1
	eq "victim contents" "$(sum "$W/victim")" "$(sum /tmp/odd)" || return 1
	[ ! -e "$W/d1/d2/r3" ] || { echo "r3 still exists"; return 1; }
}

do_rename_dir() {
	mv "$W/d1" "$W/d1r" || return 1
	[ ! -e "$W/d1" ] || { echo "d1 still exists"; return 1; }
	eq "inner.txt after rename" "$(cat "$W/d1r/d2/d3/inner.txt")" "inner file" || return 1
	mkdir "$W/other" || return 1
	mv "$W/d1r/d2" "$W/other/d2m" || return 1
	eq "inner.txt after move" "$(cat "$W/other/d2m/d3/inner.txt")" "inner file"
}

do_hardlink() {
	ln "$W/small.txt" "$W/hard" || return 1
	eq "link count of small.txt" "$(stat -c %h "$W/small.txt")" 2 || return 1
	eq "link count of hard" "$(stat -c %h "$W/hard")" 2 || return 1
	eq "inode of hard" "$(stat -c %i "$W/hard")" "$(stat -c %i "$W/small.txt")" || return 1
	eq "contents of hard" "$(sum "$W/hard")" "$(sum /tmp/small)" || return 1
	ln "$W/odd.bin" "$W/hard2" && rm "$W/hard2" || return 1
	eq "link count of odd.bin after unlink" "$(stat -c %h "$W/odd.bin")" 1
}

do_symlink() {
	ln -s small.txt "$W/sym" || return 1
	ln -s ../no/such/target "$W/dangling" || return 1
	[ -L "$W/sym" ] || { echo "sym is not a symlink"; return 1; }
	eq "readlink sym" "$(readlink "$W/sym")" small.txt || return 1
	eq "readlink dangling" "$(readlink "$W/dangling")" ../no/such/target || return 1
	eq "contents through sym" "$(sum "$W/sym")" "$(sum /tmp/small)"
}

do_byte_names() {
	# Names are bytes: Latin-1 names made, listed, renamed and read as they are.
	mkdir "$W/bytes" || return 1
	n1=$(printf 'caf\351')
	n2=$(printf 'ren\350-\377')
	echo "latin-1" >"$W/bytes/$n1" || return 1
	# (busybox ls shows such bytes as '?': list with a glob, compare the bytes)
	listed=$(for f in "$W/bytes"/*; do printf '%s\n' "${f##*/}"; done | od -An -tx1 | tr -s ' ')
	eq "the Latin-1 name listed" "$listed" "$(printf '%s\n' "$n1" | od -An -tx1 | tr -s ' ')" || return 1
	mv "$W/bytes/$n1" "$W/bytes/$n2" || return 1
	[ ! -e "$W/bytes/$n1" ] || { echo "old name still there"; return 1; }
	eq "contents after rename" "$(cat "$W/bytes/$n2")" "latin-1"
}

do_chmod() {
	chmod 0640 "$W/small.txt" || return 1
	chmod 0751 "$W/other" || return 1
	chmod 0700 "$W/odd.bin" || return 1
	eq "mode of small.txt" "$(stat -c %a "$W/small.txt")" 640 || return 1
	eq "mode of other" "$(stat -c %a "$W/other")" 751 || return 1
	eq "mode of odd.bin" "$(stat -c %a "$W/odd.bin")" 700
}

do_utimes() {
	touch -d "2001-02-03 04:05:06" "$W/append.txt" || return 1
	eq "mtime of append.txt" "$(stat -c %Y "$W/append.txt")" 981173106 || return 1
	before=$(date +%s)
	touch "$W/empty" || return 1
	t=$(stat -c %Y "$W/empty")
	# server and guest clocks may differ a little
	[ $((t - before)) -gt -120 ] && [ $((t - before)) -lt 120 ] || { echo "mtime of empty: $t, guest clock $before"; return 1; }
}

do_truncate() {
	dd if=/dev/urandom of=/tmp/trunc bs=10000 count=1 2>/dev/null
	cp /tmp/trunc "$W/trunc" || return 1
	truncate -s 3000 "$W/trunc" || return 1
	truncate -s 3000 /tmp/trunc
	eq "size after shrink" "$(stat -c %s "$W/trunc")" 3000 || return 1
	eq "contents after shrink" "$(sum "$W/trunc")" "$(sum /tmp/trunc)" || return 1
	truncate -s 1048700 "$W/trunc" || return 1
	truncate -s 1048700 /tmp/trunc
	eq "size after grow" "$(stat -c %s "$W/trunc")" 1048700 || return 1
	eq "contents after grow" "$(sum "$W/trunc")" "$(sum /tmp/trunc)" || return 1
	# truncate through an open descriptor (O_TRUNC) and rewrite
	echo "rewritten" >"$W/victim" || return 1
	eq "contents after O_TRUNC" "$(cat "$W/victim")" rewritten
}

names() {
	seq 1 "$NFILES" | sed 's/^/f/' | sort | sha256sum | cut -d' ' -f1
}

# mkmany FIRST: creates f FIRST, FIRST+2, ... (two run at once, so the server
# sees concurrent requests on the mount's connection)
mkmany() {
	i=$1
	while [ $i -le "$NFILES" ]; do
		: >"$W/many/f$i" || { echo "create f$i failed" >/tmp/mkmany.err; return 1; }
		i=$((i + 2))
	done
}

do_manyfiles() {
	mkdir "$W/many" || return 1
	rm -f /tmp/mkmany.err
	mkmany 1 &
	p1=$!
	mkmany 2 &
	p2=$!
	wait $p1
	r1=$?
	wait $p2
	r2=$?
	if [ $r1 != 0 ] || [ $r2 != 0 ]; then
		cat /tmp/mkmany.err 2>/dev/null || echo "create failed"
		return 1
	fi
	echo "entry $NFILES" >"$W/many/f$NFILES" || return 1
	eq "entries listed" "$(ls -1 "$W/many" | wc -l)" "$NFILES" || return 1
	eq "names listed" "$(ls -1 "$W/many" | sort | sha256sum | cut -d' ' -f1)" "$(names)" || return 1
	echo "$NFILES files"
}

# --- phase 3: the same state seen through a fresh mount -----------------------

do_persisted() {
	eq "mode of small.txt" "$(stat -c %a "$W/small.txt")" 640 || return 1
	eq "mode of other" "$(stat -c %a "$W/other")" 751 || return 1
	eq "mode of odd.bin" "$(stat -c %a "$W/odd.bin")" 700 || return 1
	eq "mtime of append.txt" "$(stat -c %Y "$W/append.txt")" 981173106 || return 1
	eq "link count of hard" "$(stat -c %h "$W/hard")" 2 || return 1
	eq "inode of hard" "$(stat -c %i "$W/hard")" "$(stat -c %i "$W/small.txt")" || return 1
	eq "readlink sym" "$(readlink "$W/sym")" small.txt || return 1
	eq "trunc size" "$(stat -c %s "$W/trunc")" 1048700 || return 1
	eq "trunc contents" "$(sum "$W/trunc")" "$(sum /tmp/trunc)" || return 1
	eq "inner.txt" "$(cat "$W/other/d2m/d3/inner.txt")" "inner file" || return 1
	eq "victim" "$(cat "$W/victim")" rewritten || return 1
	[ ! -e "$W/d1" ] && [ ! -e "$W/d1r/d2" ] || { echo "renamed-away names still exist"; return 1; }
	eq "big.bin" "$(sum "$W/big.bin")" "$(sum /tmp/big)"
}

do_manyfiles_persisted() {
	eq "entries listed" "$(ls -1 "$W/many" | wc -l)" "$NFILES" || return 1
	eq "names listed" "$(ls -1 "$W/many" | sort | sha256sum | cut -d' ' -f1)" "$(names)" || return 1
	eq "entries with ls -l" "$(ls -l "$W/many" | grep -c '^-')" "$NFILES" || return 1
	eq "last entry" "$(cat "$W/many/f$NFILES")" "entry $NFILES" || return 1
	echo "$NFILES files"
}

do_rm() {
	rm -r "$W" || return 1
	[ ! -e "$W" ] || { echo "$W still exists"; return 1; }
	ls -a /mnt | grep -qx "${W#/mnt/}" && { echo "${W#/mnt/} still listed"; return 1; }
	return 0
}

do_df() {
	line=$(df -P -k /mnt | tail -n 1) || return 1
	set -- $line
	# Filesystem 1K-blocks Used Available Use% Mounted-on
	[ "${2:-0}" -gt 0 ] 2>/dev/null || { echo "df: bad total in '$line'"; return 1; }
	[ "$6" = /mnt ] || { echo "df: unexpected line '$line'"; return 1; }
	echo "total ${2}K used ${3}K avail ${4}K"
}

do_umount() {
	cd / && umount /mnt
}

# Messages by which the kernel reports a server it had to work around, or a
# client bug the server triggered (the console shows only errors: "quiet").
# "Oops:" with its colon: a bare "oops" matches the boot-time warning about
# loops_per_jiffy that a busy host provokes.
SUSPICIOUS='readdir loop|fileid changed|not responding|server .* error|nfs.*(invalid|bad|corrupt|unexpected|giant|overflow|too (big|large|long))|rpc.*(bad|garbage|invalid)|BUG:|Oops:|WARNING:|general protection|Call Trace|kernel panic'

do_kernel_log() {
	dmesg >/tmp/dmesg
	grep -iE "$SUSPICIOUS" /tmp/dmesg >/tmp/dmesg.bad
	if [ -s /tmp/dmesg.bad ]; then
		sed 's/^/  kernel: /' /tmp/dmesg.bad >/dev/console
		echo "$(wc -l </tmp/dmesg.bad) suspicious kernel messages, first: $(head -n 1 /tmp/dmesg.bad)"
		return 1
	fi
	echo "$(wc -l </tmp/dmesg) lines, none suspicious"
}

step modules do_modules || finish
step network do_network || finish
step mount do_mount || finish
step workdir do_workdir || finish
step write do_write
step remount-1 do_remount || finish
step readback do_readback
step mkdir do_mkdir
step rename-file do_rename_file
step rename-dir do_rename_dir
step hardlink do_hardlink
step symlink do_symlink
step byte-names do_byte_names
step chmod do_chmod
step utimes do_utimes
step truncate do_truncate
step manyfiles do_manyfiles
step remount-2 do_remount || finish
step persisted do_persisted
step manyfiles-persisted do_manyfiles_persisted
step rm-r do_rm
step df do_df
step umount do_umount
step kernel-log do_kernel_log
finish
