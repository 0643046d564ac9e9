"""Each agency's reason codes for a decision (the officer picks them from the form)."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from common.names import Agency
from server.types import Verdict

REASON_CODES: Mapping[Agency, Mapping[str, str]] = MappingProxyType(
    {
        Agency.CBSA: MappingProxyType(
            {
                "CA-ADM": "Inadmissible to Canada",
                "CA-CUS": "Customs or immigration violation",
                "CA-CRM": "Criminal record",
                "CA-ID": "Identity not established",
                "CA-RES": "Residency requirement not met",
                "CA-DOC": "Documents incomplete or inconsistent",
                "CA-INF": "False or misleading information",
                "CA-OTH": "Other (see notes)",
            }
        ),
        Agency.CBP: MappingProxyType(
            {
                "US-ADM": "Inadmissible to the United States",
                "US-CUS": "Customs, agriculture or immigration violation",
                "US-CRM": "Criminal record",
                "US-ID": "Identity not established",
                "US-LAW": "Subject of an ongoing investigation",
                "US-DOC": "Documents incomplete or inconsistent",
                "US-INF": "False or misleading information",
                "US-OTH": "Other (see notes)",
            }
        ),
    }
)


def check_reason_codes(agency: Agency, verdict: Verdict, codes: tuple[str, ...]) -> str | None:
    """Why the codes do not fit the decision, or None if they do."""
    known = REASON_CODES[agency]
    unknown = [code for code in codes if code not in known]
    if unknown:
        return f"unknown {agency} reason code(s): {', '.join(unknown)}"
    if len(set(codes)) != len(codes):
        return "a reason code is listed twice"
    if verdict is not Verdict.APPROVE and not codes:
        return f"a decision to {verdict} needs at least one reason code"
    return None
