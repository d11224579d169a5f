#!/usr/bin/env bash
# Renders telltale.conf.template (beside this script) to stdout, filling in every
# ${TELLTALE_PROXY_*} placeholder from the environment (README.md beside this script says
# what each is). Unlike a bare envsubst it leaves nginx's own $variables alone, applies the
# defaults below, and refuses to print a config with a placeholder left unset.
#
#   TELLTALE_PROXY_SERVER_NAME=telltale.example.com ./render.sh > /etc/nginx/conf.d/telltale.conf
set -euo pipefail
template="${TELLTALE_PROXY_TEMPLATE:-$(dirname "$0")/telltale.conf.template}"

: "${TELLTALE_PROXY_SERVER_NAME:?the host name clients use, e.g. telltale.example.com}"
: "${TELLTALE_PROXY_PUBLIC_URL:=https://$TELLTALE_PROXY_SERVER_NAME}"
: "${TELLTALE_PROXY_HTTPS_LISTEN:=443}"
: "${TELLTALE_PROXY_HTTP_LISTEN:=80}"
: "${TELLTALE_PROXY_UPSTREAM:=127.0.0.1:8080}"
: "${TELLTALE_PROXY_CERT:=/etc/letsencrypt/live/$TELLTALE_PROXY_SERVER_NAME/fullchain.pem}"
: "${TELLTALE_PROXY_CERT_KEY:=/etc/letsencrypt/live/$TELLTALE_PROXY_SERVER_NAME/privkey.pem}"
: "${TELLTALE_PROXY_HTPASSWD:=/etc/nginx/telltale.htpasswd}"
: "${TELLTALE_PROXY_INGEST_RATE:=10r/s}"
: "${TELLTALE_PROXY_INGEST_BURST:=20}"
: "${TELLTALE_PROXY_ACCESS_LOG:=/var/log/nginx/telltale.access.log}"

text="$(<"$template")"
for name in SERVER_NAME PUBLIC_URL HTTPS_LISTEN HTTP_LISTEN UPSTREAM CERT CERT_KEY HTPASSWD \
  INGEST_RATE INGEST_BURST ACCESS_LOG; do
  var="TELLTALE_PROXY_$name"
  value="${!var}"
  # One nginx token each: a space, quote, brace or semicolon would change the config's
  # meaning (the listen values may hold a space for parameters such as "443 default_server").
  if [[ $value == *[\;\{\}\"\'\$]* || ( $name != *LISTEN && $value == *[[:space:]]* ) ]]; then
    echo "render.sh: $var=${value@Q} is not a single nginx value" >&2
    exit 1
  fi
  text="${text//"\${$var}"/$value}"
done
if [[ $text =~ \$\{TELLTALE_PROXY_[A-Z_]*\} ]]; then
  echo "render.sh: ${BASH_REMATCH[0]} in $template has no value" >&2
  exit 1
fi
printf '%s\n' "$text"
