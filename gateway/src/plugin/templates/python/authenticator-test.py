import unittest

from logic import header_name, secret_name


class LogicTest(unittest.TestCase):
    def test_signs_with_the_signing_secret_unless_the_config_names_another(self):
        self.assertEqual(secret_name(None), "signing_secret")
        self.assertEqual(secret_name({"secret": "partner_key"}), "partner_key")

    def test_the_header_defaults_to_x_signature(self):
        self.assertEqual(header_name({}), "x-signature")
        self.assertEqual(header_name({"header": "X-Sig"}), "X-Sig")


if __name__ == "__main__":
    unittest.main()
