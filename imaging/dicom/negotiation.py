"""Presentation context negotiation that keeps what the peer prefers.

A peer lists the transfer syntaxes of a context in its order of preference (PS3.8 7.1.1.14): a
modality offers the syntax its images are in first. pynetdicom would accept the first of *ours*
that the peer offers, Implicit VR Little Endian as a rule, so senders would decompress JPEG,
JPEG-LS and RLE and lose private tags' VRs. Narrowing each proposed context to the first syntax
the peer lists that we support, before pynetdicom negotiates, makes it accept that one: a C-STORE
is received as the modality has it, and a C-GET peer gets the instances in the syntax it asked for
first (for a stored instance, the one it is stored in when the peer offers it).
"""


def keep_preferred_syntaxes(event) -> None:
    """On A-ASSOCIATE-RQ: keep, in each proposed context we support, only the peer's first supported syntax."""
    ours = {cx.abstract_syntax: set(cx.transfer_syntax) for cx in event.assoc.acceptor.supported_contexts}
    for context in event.assoc.requestor.primitive.presentation_context_definition_list:
        supported = ours.get(context.abstract_syntax, set())
        preferred = next((syntax for syntax in context.transfer_syntax if syntax in supported), None)
        if preferred is not None:
            context.transfer_syntax = [preferred]
