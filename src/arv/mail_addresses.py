"""What an e-mail address must be for an SMTP server to take it as a recipient, below every layer.

The API's `Email` field and the console's accounts (arv.services.accounts) check addresses by the
same rules: RFC 5321 section 4.1.2, RFC 6531 for UTF-8. A dot-atom or a quoted local part, then a
host name (one label or more: `arv.local`, `mail.test`, `localhost`) or an address literal. Spaces,
line breaks and other controls are refused even inside quotes: the address goes into mail headers.
"""

from __future__ import annotations

import ipaddress
import re

MAX_EMAIL = 320
MAX_LOCAL_OCTETS = 64
MAX_DOMAIN_OCTETS = 255
# C0 controls, DEL, the C1 controls, and the Unicode line and paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_DOT_ATOM = re.compile(rf"^{_ATEXT}+(\.{_ATEXT}+)*$")
# qtextSMTP and quoted pairs without the space.
_QUOTED = re.compile(r'^"([\x21\x23-\x5b\x5d-\x7e\u0080-\U0010ffff]|\\[\x21-\x7e])*"$')
_LETTER = r"[A-Za-z0-9\u0080-\U0010ffff]"
_LABEL = re.compile(rf"^{_LETTER}([A-Za-z0-9\-\u0080-\U0010ffff]*{_LETTER})?$")


def _valid_domain(domain: str) -> bool:
    if domain.startswith("[") and domain.endswith("]"):
        literal = domain[1:-1]
        try:
            if literal[:5].lower() == "ipv6:":
                ipaddress.IPv6Address(literal[5:])
            else:
                ipaddress.IPv4Address(literal)
        except ValueError:
            return False
        return True
    labels = domain.removesuffix(".").split(".")  # a trailing dot is the root: `example.com.`
    return (
        0 < len(domain.encode()) <= MAX_DOMAIN_OCTETS
        and all(len(label.encode()) <= 63 and _LABEL.match(label) for label in labels)
        and not labels[-1].isdigit()  # 10.0.0.1 is an address literal's job: [10.0.0.1]
    )


def mailbox(value: str) -> str:
    """`value` if an SMTP server could take it as a recipient, else ValueError saying why."""
    if _CONTROL.search(value) or " " in value:
        raise ValueError("an e-mail address has no spaces, line breaks or other control characters")
    if len(value) > MAX_EMAIL:
        raise ValueError(f"an e-mail address is at most {MAX_EMAIL} characters long")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise ValueError("an e-mail address is local-part@domain, e.g. studio@example.com")
    if len(local.encode()) > MAX_LOCAL_OCTETS:
        raise ValueError(f"the part before @ is at most {MAX_LOCAL_OCTETS} bytes long")
    if not (_DOT_ATOM.match(local) or _QUOTED.match(local)):
        raise ValueError(
            "the part before @ is letters, digits and !#$%&'*+-/=?^_`{|}~ between dots, or a quoted string"
        )
    if not _valid_domain(domain):
        raise ValueError(
            "the part after @ must be a host name (example.com, arv.local, localhost) "
            "or an address literal ([192.0.2.1], [IPv6:2001:db8::1])"
        )
    return value
