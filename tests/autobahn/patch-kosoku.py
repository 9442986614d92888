"""Patches the installed kosoku's case 12 code (also run for 13.*), which hashes a message given
as `str` without encoding it first, and decodes a received text message that is already `str`
(errors, whatever the server does): such a message is encoded before hashing, as UTF-8 for text
and latin-1 for binary (a byte per code point), and decoded only when it is bytes. Idempotent;
run by the Autobahn runner scripts before the compression cases."""
import os
import kosoku

path = os.path.join(os.path.dirname(kosoku.__file__), "cases", "case12_x_x.py")
with open(path) as f:
    source = f.read()
old = "   m = hashlib.sha1()\n   m.update(msg)\n"
new = ("   m = hashlib.sha1()\n"
       "   m.update(msg.encode('latin-1' if self.TESTDATA['binary'] else 'utf-8')"
       " if isinstance(msg, str) else msg)  # patched by wsloop: hash bytes\n")
old_decode = "      msg = msg.decode('utf-8')\n"
new_decode = ("      msg = msg.decode('utf-8') if isinstance(msg, bytes) else msg"
              "  # patched by wsloop\n")
if old in source or old_decode in source:
    source = source.replace(old, new).replace(old_decode, new_decode)
    with open(path, "w") as f:
        f.write(source)
    print("patched kosoku's case 12 code")
