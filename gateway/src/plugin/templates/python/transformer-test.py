import json
import pathlib
import unittest

from logic import shape

EVENT = json.loads((pathlib.Path(__file__).parent / "fixtures" / "incident_triggered.json").read_text())


class ShapeTest(unittest.TestCase):
    def test_the_sample_incident_becomes_a_chat_message(self):
        request = shape(EVENT, "https://receiver.example/hook", "incident.triggered", None)
        self.assertEqual(request["method"], "POST")
        self.assertEqual(request["url"], "https://receiver.example/hook")
        self.assertEqual(
            json.loads(request["body"]),
            {"text": "[TRIGGERED] Sample incident for testing webhooks (Team 2 Service 1)"},
        )

    def test_a_configured_prefix_replaces_the_status(self):
        request = shape(EVENT, "https://receiver.example/hook", "incident.triggered", {"prefix": "ALERT"})
        self.assertTrue(json.loads(request["body"])["text"].startswith("ALERT Sample incident"))


if __name__ == "__main__":
    unittest.main()
