#!/bin/bash
# dracut module 99crashdrop: crashdrop-send in the kdump initramfs (kdump-utils: Fedora, RHEL,
# CentOS Stream, Alma, Rocky). kdump.conf pulls it in with `dracut_args --add crashdrop` and runs
# it as its core collector:
#
#   dracut_args --add crashdrop
#   core_collector /usr/bin/crashdrop-kdump makedumpfile -l --message-level 7 -d 31
#
# It installs crashdrop-send, /usr/bin/crashdrop-kdump (the collector wrapper),
# /etc/crashdrop/sender.toml and every credential file that file names (ca, cert, key, identity,
# known_hosts), all 0600 in the image, and asks dracut for the network (ip=dhcp unless
# CRASHDROP_IP says otherwise, e.g. CRASHDROP_IP="ip=eth0:dhcp").
#
# Sources, overridable for tests: CRASHDROP_CONFIG (/etc/crashdrop/sender.toml), CRASHDROP_SEND
# (crashdrop-send on PATH), CRASHDROP_KDUMP (/usr/share/crashdrop/crashdrop-kdump).

crashdrop_config() { echo "${CRASHDROP_CONFIG:-/etc/crashdrop/sender.toml}"; }
crashdrop_send() { echo "${CRASHDROP_SEND:-$(command -v crashdrop-send || echo /usr/bin/crashdrop-send)}"; }
crashdrop_kdump() { echo "${CRASHDROP_KDUMP:-/usr/share/crashdrop/crashdrop-kdump}"; }

# "HOST-PATH IMAGE-PATH" for each credential the config names; relative paths are relative to
# the config's directory, which is /etc/crashdrop in the image.
crashdrop_credentials() {
    local config dir path
    config=$(crashdrop_config)
    dir=$(dirname "$config")
    sed -n -E 's/^[[:space:]]*(ca|cert|key|identity|known_hosts)[[:space:]]*=[[:space:]]*"([^"]+)".*/\2/p' \
        "$config" | while read -r path; do
        case $path in
            /*) echo "$path $path" ;;
            *) echo "$dir/$path /etc/crashdrop/$path" ;;
        esac
    done
}

check() {
    local f
    for f in "$(crashdrop_config)" "$(crashdrop_send)" "$(crashdrop_kdump)"; do
        if [[ ! -f $f ]]; then
            derror "crashdrop: $f is missing"
            return 1
        fi
    done
    # Only when asked for (dracut_args --add crashdrop).
    return 255
}

depends() {
    echo network
    return 0
}

install() {
    local from to
    inst_binary "$(crashdrop_send)" /usr/bin/crashdrop-send || return 1
    inst_script "$(crashdrop_kdump)" /usr/bin/crashdrop-kdump || return 1
    inst_simple "$(crashdrop_config)" /etc/crashdrop/sender.toml || return 1
    chmod 0600 "${initdir}/etc/crashdrop/sender.toml"
    while read -r from to; do
        if [[ ! -f $from ]]; then
            derror "crashdrop: $(crashdrop_config) names $from, which does not exist"
            return 1
        fi
        inst_simple "$from" "$to" || return 1
        chmod 0600 "${initdir}${to}"
    done < <(crashdrop_credentials)
    # The capture kernel brings the network up in the initramfs.
    mkdir -p "${initdir}/etc/cmdline.d"
    echo "rd.neednet=1 ${CRASHDROP_IP:-ip=dhcp}" > "${initdir}/etc/cmdline.d/95crashdrop.conf"
}
