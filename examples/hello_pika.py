"""The seed's pika sample, corrected: publish "Hello World!" to queue `hello`, consume it.

The original called basic_consume without a callback and closed the connection before
consuming anything. Here the queue is declared first, the callback is registered with
basic_consume, and start_consuming() runs until the message arrives.

    python examples/hello_pika.py [AMQP_URL]
"""

import sys

import pika

url = sys.argv[1] if len(sys.argv) > 1 else "amqp://guest:guest@localhost:5672/%2F"

# Create a connection and a channel
connection = pika.BlockingConnection(pika.URLParameters(url))
channel = connection.channel()

# Declare the queue (idempotent), so the message has somewhere to go
channel.queue_declare(queue="hello")

# Send a message through the default exchange to the queue named by the routing key
channel.basic_publish(exchange="", routing_key="hello", body="Hello World!")
print(" [x] Sent 'Hello World!'")


# Handle a message: print it, then stop consuming
def callback(ch, method, properties, body):
    print(f" [x] Received {body!r}")
    ch.stop_consuming()


channel.basic_consume(queue="hello", on_message_callback=callback, auto_ack=True)
channel.start_consuming()

# Close the connection
connection.close()
